//! From Arti's errors to [`TorError`].

use arti_client::{ErrorKind, HasKind};
use tor_error::ErrorReport;

use crate::TorError;

/// Maps an error from connecting to an onion service.
///
/// Arti scrubs onion addresses from its error messages unless safe logging is
/// turned off, so the report can be shown as it is.
pub(super) fn connect_error(e: &arti_client::Error) -> TorError {
    match e.kind() {
        ErrorKind::OnionServiceMissingClientAuth => TorError::ClientAuthRequired,
        ErrorKind::OnionServiceWrongClientAuth => TorError::ClientAuthRejected,
        ErrorKind::ArtiShuttingDown => TorError::Shutdown,
        ErrorKind::BadApiUsage | ErrorKind::Internal => TorError::Protocol(e.report().to_string()),
        ErrorKind::InvalidConfig | ErrorKind::FeatureDisabled => {
            TorError::Config(e.report().to_string())
        }
        _ => TorError::ServiceUnreachable(e.report().to_string()),
    }
}

/// Whether a failed connect may succeed if tried again soon: the service may be
/// fresh and its descriptor not uploaded yet, or an introduction point not ready.
pub(super) fn is_retryable(e: &arti_client::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::OnionServiceNotFound
            | ErrorKind::OnionServiceNotRunning
            | ErrorKind::OnionServiceConnectionFailed
            | ErrorKind::TorNetworkTimeout
            | ErrorKind::RemoteNetworkTimeout
            // Arti gives this kind to a descriptor that no HSDir has yet, too.
            | ErrorKind::BootstrapRequired
    )
}

/// Maps an error from creating or bootstrapping the client.
pub(super) fn bootstrap_error(e: &arti_client::Error) -> TorError {
    match e.kind() {
        ErrorKind::InvalidConfig | ErrorKind::FeatureDisabled => {
            TorError::Config(e.report().to_string())
        }
        ErrorKind::ArtiShuttingDown => TorError::Shutdown,
        _ => TorError::BootstrapStalled(e.report().to_string()),
    }
}

/// Maps an error from launching or reconfiguring a service.
pub(super) fn service_error(e: &(dyn std::error::Error + 'static)) -> TorError {
    TorError::Service(e.report().to_string())
}
