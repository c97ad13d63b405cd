//! The daemons a run drives: one URL per replica (`--url` given once per replica), the
//! connections spread over them round-robin.
//!
//! Replicas behind a load balancer share one store, so what a connection sets up (its pool of
//! tokens, its enrolled device) is made on the *next* replica: every timed operation then
//! reads or changes what another replica wrote. With one URL both are the same daemon.

use super::BenchError;
use crate::client::BaseUrl;

/// The replicas' base URLs: at least one, each a valid `https://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicas(Vec<String>);

impl Replicas {
    /// The URLs in the order given; refuses none, and any that is not a daemon base URL.
    pub fn new(urls: Vec<String>) -> Result<Self, BenchError> {
        if urls.is_empty() {
            return Err(BenchError::Config("no --url".to_owned()));
        }
        for url in &urls {
            BaseUrl::parse(url).map_err(|e| BenchError::Config(format!("URL {url:?}: {e}")))?;
        }
        Ok(Self(urls))
    }

    /// How many replicas.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never: a `Replicas` holds at least one URL.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The URLs, in the order given.
    pub fn urls(&self) -> &[String] {
        &self.0
    }

    /// The first URL: the one `--flood` targets.
    pub fn first(&self) -> &str {
        self.url(0)
    }

    /// The replica connection `connection` drives: `connection % len`.
    pub fn of_connection(&self, connection: usize) -> usize {
        connection % self.len()
    }

    /// The replica that makes connection `connection`'s setup: the one after its own.
    pub fn setup_of_connection(&self, connection: usize) -> usize {
        (self.of_connection(connection) + 1) % self.len()
    }

    /// The URL of replica `replica` (taken modulo the count).
    pub fn url(&self, replica: usize) -> &str {
        // Not empty (checked in `new`), so the index is in range.
        self.0.get(replica % self.len()).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicas(urls: &[&str]) -> Replicas {
        Replicas::new(urls.iter().map(|u| (*u).to_owned()).collect()).unwrap()
    }

    #[test]
    fn connections_go_round_robin_and_set_up_on_the_next_replica() {
        let r = replicas(&["https://a:1", "https://b:2", "https://c:3"]);
        let timed: Vec<&str> = (0..5).map(|i| r.url(r.of_connection(i))).collect();
        assert_eq!(
            timed,
            [
                "https://a:1",
                "https://b:2",
                "https://c:3",
                "https://a:1",
                "https://b:2"
            ]
        );
        let setup: Vec<usize> = (0..4).map(|i| r.setup_of_connection(i)).collect();
        assert_eq!(setup, [1, 2, 0, 1]);
        assert_eq!(r.first(), "https://a:1");
    }

    #[test]
    fn one_replica_sets_up_and_runs_on_itself() {
        let r = replicas(&["https://127.0.0.1:8443"]);
        for i in 0..3 {
            assert_eq!((r.of_connection(i), r.setup_of_connection(i)), (0, 0));
        }
    }

    #[test]
    fn no_url_and_bad_urls_are_refused() {
        assert!(Replicas::new(Vec::new()).is_err());
        let bad = vec!["https://a:1".to_owned(), "http://b:2".to_owned()];
        match Replicas::new(bad) {
            Err(BenchError::Config(m)) => assert!(m.contains("http://b:2"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
