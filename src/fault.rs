//! Faults that keep their cause: what payhsm was doing, in its own words, and the error of the
//! library or system call that made it fail, as [`std::error::Error::source`].
//!
//! A store, HSM, signer or start-up fault is logged once, with [`Chain`], where it ends (the
//! API edge for a request, `payhsmd`'s exit for start-up). Contexts are payhsm's own text and
//! never hold a secret; a source is kept only when its text holds none either (see
//! `store::postgres::connection` for the one that is redacted first).

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// A source error as a fault keeps it: shared, so the fault stays `Clone`.
pub type Source = Arc<dyn Error + Send + Sync + 'static>;

/// What failed, and the error that made it fail when there is one.
#[derive(Debug, Clone)]
pub struct Fault {
    context: Cow<'static, str>,
    source: Option<Source>,
}

impl Fault {
    /// A fault with no underlying error (an invariant or a limit payhsm checks itself).
    pub fn new(context: impl Into<Cow<'static, str>>) -> Self {
        Self {
            context: context.into(),
            source: None,
        }
    }

    /// A fault caused by `source`.
    pub fn caused_by(
        context: impl Into<Cow<'static, str>>,
        source: impl Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            context: context.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// What payhsm was doing, without the source.
    pub fn context(&self) -> &str {
        &self.context
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)
    }
}

impl Error for Fault {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// An error and its sources, `: `-separated, for a log line or a start-up failure.
pub struct Chain<'a>(pub &'a dyn Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_shows_its_context_and_keeps_its_source_for_the_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left");
        let fault = Fault::caused_by("cannot write /data/payhsm.db", io);
        assert_eq!(fault.to_string(), "cannot write /data/payhsm.db");
        let source = fault.source().expect("the io error is kept");
        assert_eq!(source.to_string(), "no space left");
        assert_eq!(
            Chain(&fault).to_string(),
            "cannot write /data/payhsm.db: no space left"
        );
        assert!(Fault::new("x").source().is_none());
        assert_eq!(Chain(&fault.clone()).to_string(), Chain(&fault).to_string());
    }
}
