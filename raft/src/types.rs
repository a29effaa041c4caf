//! The openraft type configuration of the ledger and the aliases the rest of the code uses.
//!
//! One place names every concrete type openraft is generic over, so that a reader sees at a
//! glance what travels in the log ([`Proposal`]), what an apply returns ([`Applied`]) and how a
//! member is addressed ([`Member`]).

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

use crate::command::Applied;
use crate::command::Proposal;

/// A member's Raft identity. Generated once per data directory (see `store::open`), never
/// configured: a wiped node must come back under a new identity (ha-anchors.md §1.4).
pub type NodeId = u64;

/// How the cluster reaches a member, stored in the replicated membership.
///
/// `name` is the operator's name for the host and also the TLS server name its certificate
/// carries, so a connection to `raft_addr` authenticates the member it expects.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Member {
    /// Operator-facing name, also the DNS name in the member's certificate.
    pub name: String,
    /// QUIC address of the member's cluster transport.
    pub raft_addr: String,
    /// gRPC address of the member's admin service.
    pub admin_addr: String,
    /// The newest ledger format this member can apply (see [`crate::command::LEDGER_FORMAT`]).
    pub ledger_format: u16,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.raft_addr)
    }
}

openraft::declare_raft_types!(
    /// The ledger's openraft type configuration.
    pub TypeConfig:
        D = Proposal,
        R = Applied,
        NodeId = NodeId,
        Node = Member,
);

pub type LogId = openraft::LogId<CommittedLeaderId>;
pub type CommittedLeaderId = <LeaderId as openraft::vote::RaftLeaderId>::Committed;
pub type LeaderId = <TypeConfig as openraft::RaftTypeConfig>::LeaderId;
pub type Vote = <TypeConfig as openraft::RaftTypeConfig>::Vote;
pub type Entry = <TypeConfig as openraft::RaftTypeConfig>::Entry;
pub type EntryPayload = openraft::EntryPayload<Proposal, NodeId, Member>;
pub type StoredMembership = openraft::StoredMembership<CommittedLeaderId, NodeId, Member>;
pub type Membership = openraft::Membership<NodeId, Member>;
pub type SnapshotMeta = openraft::SnapshotMeta<CommittedLeaderId, NodeId, Member>;
pub type Snapshot = openraft::Snapshot<CommittedLeaderId, NodeId, Member, crate::snapshot::SnapshotFile>;
pub type Raft = openraft::Raft<TypeConfig, crate::state::StateMachine>;
pub type RaftMetrics = openraft::RaftMetrics<TypeConfig>;
