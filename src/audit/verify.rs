//! SKELETON: to be implemented (store/audit helper).
/// What an intact log contained.
#[derive(Debug)]
pub struct VerifySummary {}
/// The first problem found.
#[derive(Debug)]
pub struct VerifyError {}
/// Verifies an export.
pub fn verify_export(text: &str) -> Result<VerifySummary, VerifyError> {
    let _ = text;
    unimplemented!()
}
