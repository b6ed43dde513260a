//! The error of the crate's entry points ([`crate::load`], [`crate::build`]).

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error(transparent)]
    Variable(#[from] crate::variables::VariableError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error(transparent)]
    Route(#[from] crate::routes::RouteError),
    #[error(transparent)]
    Build(#[from] crate::build::BuildError),
    #[error("component {component:?}: allowed_outbound_hosts")]
    HostTemplate {
        component: String,
        #[source]
        source: crate::variables::VariableError,
    },
    #[error("component {component:?}")]
    AllowedHost {
        component: String,
        #[source]
        source: crate::outbound::AllowedHostError,
    },
    #[error("component {component:?}: invalid variable")]
    BodyLimit {
        component: String,
        #[source]
        source: crate::body_limit::BodyLimitError,
    },
    #[error("component {component:?}: variables")]
    ComponentVariables {
        component: String,
        #[source]
        source: crate::variables::VariableError,
    },
    #[error("component preparation panicked")]
    Panicked,
}
