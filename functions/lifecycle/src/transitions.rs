//! Sweep steps 3 (the state changes left in flight, found by [`crate::due`]) and 4 (the backups
//! of destroyed sandboxes); see the crate docs.

use cove_edge::store_error::IntoApi;
use cove_edge::{ApiError, Env};
use cove_snapshot_jobs::JobSettings;
use cove_store::sandboxes::SandboxRecord;
use cove_transition::{Due, SWEEP_BOUNDS, Settled};
use time::OffsetDateTime;

use crate::sweep::SweepReport;

/// What the runner gets besides the spec of `sb`, as on the user's request: its image's pull
/// credentials when the image is in the internal registry (a runner that lacks the image pulls
/// it), and the organization's project there for backups.
pub(crate) fn access(settings: &JobSettings, sb: &SandboxRecord) -> cove_transition::Access {
    let auth = settings.internal.as_ref().and_then(|r| r.auth());
    let registry = settings
        .internal
        .as_ref()
        .map(|r| cove_transition::InternalRegistry {
            host: &r.host,
            auth: auth.as_ref(),
        });
    cove_transition::Access::of(registry, sb)
}

/// Pushes again (when its runner is `responsive`) or expires the late transition of `sb` at
/// `now` (found through the due-time index, [`crate::due`]).
pub(crate) async fn one(
    env: &Env,
    settings: &JobSettings,
    sb: &SandboxRecord,
    now: OffsetDateTime,
    responsive: bool,
    report: &mut SweepReport,
) {
    let Some(t) = &sb.transition else {
        return;
    };
    let result = match cove_transition::due(t, now) {
        Due::Wait => return,
        // An unresponsive runner is not pushed; its transitions still expire.
        Due::Push if !responsive => return,
        Due::Expire => {
            let reason = format!(
                "The runner did not complete the {} in time ({} attempts)",
                t.action, t.attempts
            );
            report.transitions_expired += 1;
            cove_transition::expire(&env.store, sb, reason).await
        }
        Due::Push => {
            let at = cove_api_types::time::format_rfc3339(now);
            match cove_transition::claim(&env.store, sb, &at).await {
                Ok(Some(claimed)) => {
                    report.transitions_pushed += 1;
                    let access = access(settings, &claimed);
                    cove_transition::run_with(&env.store, &claimed, &SWEEP_BOUNDS, &access).await
                }
                Ok(None) => {
                    report.skipped += 1;
                    return;
                }
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(Settled::Row(r)) => {
            tracing::info!(sandbox = %r.id, state = r.state.as_str(), in_flight = r.transition.is_some(), "sweep: transition handled");
        }
        Ok(Settled::Discarded { reason }) => {
            tracing::info!(sandbox = %sb.id, %reason, "sweep: refused create discarded");
        }
        Err(e) => {
            report.skipped += 1;
            tracing::warn!(sandbox = %sb.id, error = %e, "sweep: transition not handled");
        }
    }
}

/// Removes the backups of destroyed sandboxes (retried every sweep until done).
pub async fn remove_backups(env: &Env, report: &mut SweepReport) -> Result<(), ApiError> {
    for sb in env.store.sandboxes().list_backup_removals().await.api()? {
        // The index may lag: act on the row as it is now.
        let Some(cur) = env.store.sandboxes().get(&sb.id).await.api()? else {
            continue;
        };
        match cove_transition::remove_backups(&env.store, &cur, &SWEEP_BOUNDS).await {
            Ok(true) if cur.has_backups_to_remove() => report.backups_removed += 1,
            Ok(true) => {}
            Ok(false) => report.skipped += 1,
            Err(e) => {
                report.skipped += 1;
                tracing::warn!(sandbox = %cur.id, error = %e, "sweep: backups not removed");
            }
        }
    }
    Ok(())
}
