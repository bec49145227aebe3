//! Nova live migration (being written).
