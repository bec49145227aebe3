//! Pure migration policies: downtime ladders (nova, adaptive), stall detection, timeout actions.
