//! Connection budgets: how many connection slots each kind of caller may hold at once.
//!
//! A connection first holds a *handshake* slot, from `accept` to the end of its TLS
//! handshake; unauthenticated peers never get more than that budget, so a flood of sockets
//! that never send a ClientHello cannot take the slots of authenticated clients. Once the
//! client's certificate is verified the connection trades it for an *established* slot,
//! counted three ways: in total, per source address and per client identity, so one caller
//! (or one host) cannot take the daemon's whole budget.
//!
//! Pure bookkeeping: no sockets, no clock. Slots are released when their guard drops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// The caps a [`Budgets`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Established (authenticated) connections in total.
    pub connections: usize,
    /// Established connections of one client identity.
    pub per_identity: usize,
    /// Established connections from one source address.
    pub per_address: usize,
    /// Connections still in their TLS handshake, in total.
    pub handshakes: usize,
    /// Connections still in their TLS handshake, from one source address.
    pub handshakes_per_address: usize,
    /// Sockets refused a handshake slot that are held, unread, until the handshake deadline
    /// instead of being closed at once (see [`Budgets::park`]).
    pub parked: usize,
}

/// Why a connection was refused a slot. Also the `reason` label of
/// `payhsm_connections_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every handshake slot is taken.
    Handshakes,
    /// The source address holds all the handshake slots it may.
    AddressHandshakes,
    /// Every established slot is taken.
    Connections,
    /// The source address holds all the established slots it may.
    AddressConnections,
    /// The client identity holds all the established slots it may.
    IdentityConnections,
}

impl Refusal {
    /// Every refusal, in metric order.
    pub const ALL: [Refusal; 5] = [
        Refusal::Handshakes,
        Refusal::AddressHandshakes,
        Refusal::Connections,
        Refusal::AddressConnections,
        Refusal::IdentityConnections,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Handshakes => "handshakes",
            Refusal::AddressHandshakes => "address_handshakes",
            Refusal::Connections => "connections",
            Refusal::AddressConnections => "address_connections",
            Refusal::IdentityConnections => "identity_connections",
        }
    }

    /// Whether the cap is the caller's own (its address or identity), not the daemon's.
    pub fn is_per_caller(self) -> bool {
        matches!(
            self,
            Refusal::AddressHandshakes | Refusal::AddressConnections | Refusal::IdentityConnections
        )
    }
}

/// Who holds which slots. Shared as `Arc<Budgets>`.
#[derive(Debug)]
pub struct Budgets {
    caps: Caps,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    parked: usize,
    handshakes: usize,
    handshakes_by_address: HashMap<IpAddr, usize>,
    connections: usize,
    by_address: HashMap<IpAddr, usize>,
    by_identity: HashMap<Arc<str>, usize>,
}

impl Budgets {
    /// Empty budgets with these caps (each at least 1).
    pub fn new(caps: Caps) -> Arc<Self> {
        Arc::new(Self {
            caps: Caps {
                connections: caps.connections.max(1),
                per_identity: caps.per_identity.max(1),
                per_address: caps.per_address.max(1),
                handshakes: caps.handshakes.max(1),
                handshakes_per_address: caps.handshakes_per_address.max(1),
                parked: caps.parked,
            },
            held: Mutex::new(Held::default()),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A handshake slot for a connection from `address`.
    pub fn handshake(self: &Arc<Self>, address: IpAddr) -> Result<HandshakeSlot, Refusal> {
        let mut held = self.held();
        if held.handshakes >= self.caps.handshakes {
            return Err(Refusal::Handshakes);
        }
        let n = held.handshakes_by_address.entry(address).or_insert(0);
        if *n >= self.caps.handshakes_per_address {
            return Err(Refusal::AddressHandshakes);
        }
        *n += 1;
        held.handshakes += 1;
        Ok(HandshakeSlot {
            budgets: self.clone(),
            address,
        })
    }

    /// An established slot for `identity` connected from `address`.
    pub fn connection(
        self: &Arc<Self>,
        address: IpAddr,
        identity: &str,
    ) -> Result<ConnectionSlot, Refusal> {
        let mut held = self.held();
        if held.connections >= self.caps.connections {
            return Err(Refusal::Connections);
        }
        if held.by_address.get(&address).copied().unwrap_or(0) >= self.caps.per_address {
            return Err(Refusal::AddressConnections);
        }
        let identity: Arc<str> = Arc::from(identity);
        if held.by_identity.get(&identity).copied().unwrap_or(0) >= self.caps.per_identity {
            return Err(Refusal::IdentityConnections);
        }
        held.connections += 1;
        *held.by_address.entry(address).or_insert(0) += 1;
        *held.by_identity.entry(identity.clone()).or_insert(0) += 1;
        Ok(ConnectionSlot {
            budgets: self.clone(),
            address,
            identity,
        })
    }

    /// A place for a socket that was refused a handshake slot, when one is free. Closing such a
    /// socket at once invites its client to reconnect at once: a flood then becomes a
    /// connect-and-close storm that takes the accept loop and the CPU. Held unread until the
    /// handshake deadline, its client waits too. Parked sockets hold a file descriptor, never a
    /// slot, and are never read as TLS.
    pub fn park(self: &Arc<Self>) -> Option<ParkSlot> {
        let mut held = self.held();
        if held.parked >= self.caps.parked {
            return None;
        }
        held.parked += 1;
        Some(ParkSlot {
            budgets: self.clone(),
        })
    }

    /// Connections in their handshake and established, now.
    pub fn open(&self) -> (usize, usize) {
        let held = self.held();
        (held.handshakes, held.connections)
    }
}

/// Decrements `map[key]`, removing it at zero so the map holds only current holders.
fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

/// A handshake slot; released when dropped.
#[derive(Debug)]
pub struct HandshakeSlot {
    budgets: Arc<Budgets>,
    address: IpAddr,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut held = self.budgets.held();
        held.handshakes = held.handshakes.saturating_sub(1);
        release(&mut held.handshakes_by_address, &self.address);
    }
}

/// A parked socket's place; released when dropped.
#[derive(Debug)]
pub struct ParkSlot {
    budgets: Arc<Budgets>,
}

impl Drop for ParkSlot {
    fn drop(&mut self) {
        let mut held = self.budgets.held();
        held.parked = held.parked.saturating_sub(1);
    }
}

/// An established slot; released when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    budgets: Arc<Budgets>,
    address: IpAddr,
    identity: Arc<str>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut held = self.budgets.held();
        held.connections = held.connections.saturating_sub(1);
        release(&mut held.by_address, &self.address);
        release(&mut held.by_identity, &self.identity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

    fn caps() -> Caps {
        Caps {
            connections: 4,
            per_identity: 2,
            per_address: 3,
            handshakes: 3,
            handshakes_per_address: 2,
            parked: 2,
        }
    }

    #[test]
    fn parked_sockets_are_bounded_and_released_on_drop() {
        let b = Budgets::new(caps());
        let p1 = b.park().unwrap();
        let _p2 = b.park().unwrap();
        assert!(b.park().is_none());
        drop(p1);
        assert!(b.park().is_some());
        // Parking takes no handshake slot.
        assert!(b.handshake(A).is_ok());
    }

    #[test]
    fn one_address_cannot_take_every_handshake_slot() {
        let b = Budgets::new(caps());
        let _a1 = b.handshake(A).unwrap();
        let _a2 = b.handshake(A).unwrap();
        assert_eq!(b.handshake(A).unwrap_err(), Refusal::AddressHandshakes);
        let b1 = b.handshake(B).unwrap();
        assert_eq!(b.handshake(B).unwrap_err(), Refusal::Handshakes);
        drop(b1);
        assert!(b.handshake(B).is_ok());
    }

    #[test]
    fn handshakes_do_not_consume_established_slots() {
        let b = Budgets::new(caps());
        let _h: Vec<_> = [A, A, B].iter().map(|a| b.handshake(*a).unwrap()).collect();
        let _c: Vec<_> = ["x", "x", "y", "y"]
            .iter()
            .zip([A, B, A, B])
            .map(|(id, a)| b.connection(a, id).unwrap())
            .collect();
        assert_eq!(b.open(), (3, 4));
    }

    #[test]
    fn one_identity_and_one_address_are_capped_and_released_on_drop() {
        let b = Budgets::new(Caps {
            per_address: 2,
            ..caps()
        });
        let x1 = b.connection(A, "x").unwrap();
        let _x2 = b.connection(B, "x").unwrap();
        assert_eq!(
            b.connection(B, "x").unwrap_err(),
            Refusal::IdentityConnections
        );
        let _y1 = b.connection(A, "y").unwrap();
        assert_eq!(
            b.connection(A, "z").unwrap_err(),
            Refusal::AddressConnections
        );
        let _z1 = b.connection(B, "z").unwrap();
        assert_eq!(b.connection(B, "w").unwrap_err(), Refusal::Connections);
        drop(x1);
        assert!(b.connection(A, "w").is_ok());
    }

    #[test]
    fn released_slots_leave_no_entries_behind() {
        let b = Budgets::new(caps());
        for i in 0..100u8 {
            let a = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 1, i));
            let h = b.handshake(a).unwrap();
            let c = b.connection(a, &format!("id-{i}")).unwrap();
            drop((h, c));
        }
        let held = b.held();
        assert!(held.handshakes_by_address.is_empty());
        assert!(held.by_address.is_empty());
        assert!(held.by_identity.is_empty());
        assert_eq!((held.handshakes, held.connections), (0, 0));
    }
}
