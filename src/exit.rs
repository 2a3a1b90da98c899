//! Exit statuses of the launcher itself (the command's own status passes through `up`): the
//! executor reports them as the commands do, so they live below both.

pub const SUCCESS: u8 = 0;
/// `check`: a manifest is invalid.
pub const INVALID: u8 = 1;
/// `up`: the launcher failed (invalid manifest included).
pub const LAUNCHER_FAILED: u8 = 125;
pub const NOT_EXECUTABLE: u8 = 126;
pub const NOT_FOUND: u8 = 127;
pub const TIMEOUT: u8 = 124;
