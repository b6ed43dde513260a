//! The function-level harness: what a function's in-process handler tests need — an [`Env`] on
//! a fresh table that verifies [`TEST_SECRET`] JWTs, optionally with a registered runner that
//! points at a real [`Agent`] (simulated or Docker).
//!
//! ```ignore
//! let h = Harness::with_runner(AgentOptions::fake()).await?;
//! let alice = h.jwt("alice");
//! let resp = sandboxes::handle(&h.env, &settings, request).await;
//! ```

use cove_api_types::ids::{OrganizationId, UserId};
use cove_api_types::runner::RunnerState;
use cove_edge::Env;
use cove_edge::config::JwtConfig;
use cove_store::runners::{DEFAULT_REGION, RunnerRecord};
use cove_store::users::{NewUser, SystemRole};

use crate::agent::{Agent, AgentOptions, Runtime};
use crate::error::{Error, Result};
use crate::inprocess::InProcess;
use crate::jwt::{self, TEST_SECRET};
use crate::{dynamo, image};

/// How long a registered runner's heartbeat stays fresh: the row says the runner was last seen
/// this far in the future, so it stays schedulable for the whole test without a heartbeat loop.
const HEARTBEAT_AHEAD: time::Duration = time::Duration::hours(6);

/// An [`Env`] on its own table, and maybe a runner.
pub struct Harness {
    pub env: Env,
    runner: Option<(Agent, RunnerRecord)>,
}

impl Harness {
    /// A fresh table; JWTs verified with [`TEST_SECRET`] (HS256).
    pub async fn new() -> Self {
        Self {
            env: Env {
                store: dynamo::store().await,
                jwt: JwtConfig {
                    hs256_secret: Some(TEST_SECRET.to_owned()),
                    ..JwtConfig::default()
                },
            },
            runner: None,
        }
    }

    /// [`Harness::new`] plus an agent started with `opts` and registered as a ready runner:
    /// the row's id is the agent's runner id, its token the agent's token.
    pub async fn with_runner(opts: AgentOptions) -> Result<Self> {
        let mut h = Self::new().await;
        let record = new_runner("runner-1")?;
        let agent = Agent::start(opts.runner_id(record.id.as_str()).token(&record.api_key))?;
        let record = h.register(record, &agent).await?;
        h.runner = Some((agent, record));
        Ok(h)
    }

    /// The agent of [`Harness::with_runner`].
    pub fn agent(&self) -> Option<&Agent> {
        self.runner.as_ref().map(|(a, _)| a)
    }

    /// The runner row of [`Harness::with_runner`] as written.
    pub fn runner(&self) -> Option<&RunnerRecord> {
        self.runner.as_ref().map(|(_, r)| r)
    }

    /// A JWT for `sub` ([`jwt::Claims::user`]) this env accepts.
    pub fn jwt(&self, sub: &str) -> String {
        jwt::token(sub)
    }

    /// Provisions `sub` as a system admin (no public route makes one) and returns its JWT.
    pub async fn admin(&self, sub: &str) -> String {
        self.provision(sub, SystemRole::Admin).await;
        self.jwt(sub)
    }

    /// The personal organization of `sub`, provisioning the user as a JWT call would.
    pub async fn personal_org(&self, sub: &str) -> OrganizationId {
        self.provision(sub, SystemRole::User)
            .await
            .personal_organization_id
    }

    async fn provision(&self, sub: &str, role: SystemRole) -> cove_store::users::UserRecord {
        let id = UserId::parse(sub).unwrap_or_else(|e| panic!("user id {sub:?}: {e}"));
        self.env
            .store
            .users()
            .get_or_provision(NewUser {
                id,
                name: sub.to_owned(),
                email: format!("{sub}@example.com"),
                email_verified: true,
                role,
            })
            .await
            .unwrap_or_else(|e| panic!("provisioning {sub}: {e}"))
    }

    /// Registers `agent` as one more ready runner (a new row with its own id, the agent's URL,
    /// token and snapshots).
    pub async fn register_runner(&self, agent: &Agent) -> Result<RunnerRecord> {
        let mut record = new_runner(&format!("runner-{}", agent.runner_id()))?;
        record.api_key = agent.token().to_owned();
        self.register(record, agent).await
    }

    async fn register(&self, mut record: RunnerRecord, agent: &Agent) -> Result<RunnerRecord> {
        record.api_url = Some(agent.url().to_owned());
        record.state = RunnerState::Ready;
        record.snapshots = agent.snapshots();
        if record.snapshots.is_empty() && agent.runtime() == Runtime::Docker {
            record.snapshots.push(image::base()?);
        }
        record.last_checked = Some(cove_api_types::time::format_rfc3339(
            time::OffsetDateTime::now_utc() + HEARTBEAT_AHEAD,
        ));
        self.env
            .store
            .runners()
            .create(&record)
            .await
            .map_err(|source| Error::Store {
                what: "cannot write the runner row",
                source,
            })
    }

    /// An in-process API over this env (mount the functions' handlers on it).
    pub fn api(&self) -> InProcess {
        InProcess::new(self.env.clone())
    }
}

fn new_runner(name: &str) -> Result<RunnerRecord> {
    RunnerRecord::new(name, DEFAULT_REGION, &cove_api_types::time::now_rfc3339()).map_err(|e| {
        Error::Random {
            what: "a runner id and token",
            reason: e.to_string(),
        }
    })
}
