//! The vendor tools' requests that reach [`Daemon::run`] from the control socket (`control.rs`): carried out
//! by the loop itself, between passes, with its own core and mailer, so the loop stays the only writer of the
//! state and a request never lands between a message's commit, send and settle.
use tokio::sync::mpsc;

use super::Daemon;
use crate::control::{Job, Response};
use crate::mailbox::Source;
use crate::reply::Mailer;

impl<S: Source, M: Mailer> Daemon<S, M> {
    /// Serve these jobs (from [`crate::control::ControlServer::start`]) while [`Daemon::run`] waits.
    pub fn serve_jobs(&mut self, jobs: mpsc::Receiver<Job>) {
        self.jobs = Some(jobs);
    }

    /// Carries out one job and answers it; one whose connection is already gone (the server stopping) is dropped.
    pub(super) async fn serve(&self, job: Job) {
        if job.reply.is_closed() {
            return;
        }
        let response = Response::from(self.core.execute(&self.mailer, &job.request).await);
        if let Response::Error { message } = &response {
            // The tool shows the reason; it can quote a buyer's address, so the log has it at debug only.
            tracing::info!(command = job.request.name(), "Control request refused or failed.");
            tracing::debug!("Control request failed: {message}");
        }
        // The tool may have gone meanwhile; what was done is in the state and the audit trail.
        let _ = job.reply.send(response);
    }
}

/// The next job, or never when there is no control socket (a closed channel disables the branch).
pub(super) async fn next(jobs: &mut Option<mpsc::Receiver<Job>>) -> Option<Job> {
    match jobs {
        Some(jobs) => jobs.recv().await,
        None => std::future::pending().await,
    }
}
