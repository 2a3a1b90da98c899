use super::exit;

pub fn run() -> u8 {
    show!("{}", schema_text());
    exit::SUCCESS
}

/// The schema exactly as checked in at schema/sandbox.schema.json.
pub fn schema_text() -> String {
    serde_json::to_string_pretty(&crate::manifest::json_schema()).expect("schema serializes")
}
