//! The admin gRPC API (`proto/admin.proto`): the node side ([`server`]) and the client that
//! validatorctl, the devnet, the benchmarks and the tests use ([`client`]).
//!
//! Admin connections are mutual TLS like the cluster transport: only holders of a certificate
//! from the cluster CA (members and operators) may call it.

pub mod client;
pub mod load;
pub mod server;

/// Generated protobuf and tonic types.
pub mod pb {
    tonic::include_proto!("validator.admin.v1");
}

/// Metadata key carrying the leader's admin address on a `FAILED_PRECONDITION` reply.
pub const LEADER_HEADER: &str = "x-leader-admin";

/// Why an admin call failed on the node.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("this node is not the leader")]
    NotLeader { leader_admin: Option<String> },
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
}

impl From<AdminError> for tonic::Status {
    fn from(e: AdminError) -> tonic::Status {
        match e {
            AdminError::InvalidArgument(m) => tonic::Status::invalid_argument(m),
            AdminError::NotLeader { leader_admin } => {
                let mut status = tonic::Status::failed_precondition(match &leader_admin {
                    Some(addr) => {
                        format!("this node is not the leader; the leader's admin address is {addr}")
                    }
                    None => "this node is not the leader and no leader is known right now".to_string(),
                });
                if let Some(addr) = leader_admin
                    && let Ok(value) = addr.parse()
                {
                    status.metadata_mut().insert(LEADER_HEADER, value);
                }
                status
            }
            AdminError::Unavailable(m) => tonic::Status::unavailable(m),
            AdminError::Failed(m) => tonic::Status::internal(m),
        }
    }
}
