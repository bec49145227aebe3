//! Nova cold migration and resize (being written).
