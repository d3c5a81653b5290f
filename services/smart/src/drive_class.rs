//! Whether a drive spins or is flash: a leaf type that the rules and the endurance reading
//! both decide by (the class picks the temperature defaults; only SSDs have endurance).

use serde::{Deserialize, Serialize};

/// Spinning disk or flash: picks the temperature defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriveClass {
    Hdd,
    Ssd,
}

impl DriveClass {
    /// Default (warning, critical) limits in °C.
    pub fn default_limits(self) -> (i64, i64) {
        match self {
            DriveClass::Hdd => (45, 55),
            DriveClass::Ssd => (60, 70),
        }
    }
}
