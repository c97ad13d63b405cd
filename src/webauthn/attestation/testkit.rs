#[cfg(test)]
pub(super) fn _placeholder() {}
