//! A deadline on every engine call: a hung Docker engine (or a `hang` fault of the simulated
//! runtime) turns into [`RuntimeError::Timeout`] instead of a request that never ends.

use std::future::Future;
use std::time::Duration;

use super::{
    CommitOptions, ContainerInfo, ContainerRuntime, ContainerSpec, Faults, ImageInfo, ImageRemoval,
    ImageSummary, Result, RuntimeError,
};

/// Deadlines of engine calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// Every call but `stop` (its grace period is added) and `commit`.
    pub call: Duration,
    /// `docker commit` (copies the container's filesystem).
    pub commit: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            call: Duration::from_secs(60),
            commit: Duration::from_secs(600),
        }
    }
}

/// [`ContainerRuntime`] with a deadline on each call.
pub struct Timed<R> {
    inner: R,
    deadlines: Deadlines,
}

impl<R: ContainerRuntime> Timed<R> {
    pub fn new(inner: R, deadlines: Deadlines) -> Self {
        Self { inner, deadlines }
    }

    pub fn inner(&self) -> &R {
        &self.inner
    }
}

async fn bounded<T>(
    op: &'static str,
    after: Duration,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(after, call).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!(
                op,
                after_secs = after.as_secs_f64(),
                "engine call timed out"
            );
            Err(RuntimeError::Timeout { op, after })
        }
    }
}

#[async_trait::async_trait]
impl<R: ContainerRuntime> ContainerRuntime for Timed<R> {
    async fn image(&self, image: &str) -> Result<Option<ImageInfo>> {
        bounded(
            "inspect an image",
            self.deadlines.call,
            self.inner.image(image),
        )
        .await
    }

    async fn images(&self) -> Result<Vec<ImageSummary>> {
        bounded("list images", self.deadlines.call, self.inner.images()).await
    }

    async fn remove_image(&self, image: &str) -> Result<ImageRemoval> {
        let call = self.inner.remove_image(image);
        bounded("remove an image", self.deadlines.call, call).await
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        bounded(
            "create a container",
            self.deadlines.call,
            self.inner.create(spec),
        )
        .await
    }

    async fn start(&self, id: &str) -> Result<()> {
        bounded(
            "start a container",
            self.deadlines.call,
            self.inner.start(id),
        )
        .await
    }

    async fn stop(&self, id: &str, timeout_secs: u32) -> Result<()> {
        let after = self.deadlines.call + Duration::from_secs(u64::from(timeout_secs));
        bounded("stop a container", after, self.inner.stop(id, timeout_secs)).await
    }

    async fn remove(&self, id: &str) -> Result<()> {
        bounded(
            "remove a container",
            self.deadlines.call,
            self.inner.remove(id),
        )
        .await
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>> {
        bounded(
            "inspect a container",
            self.deadlines.call,
            self.inner.inspect(id),
        )
        .await
    }

    async fn list(&self, label: &str, value: &str) -> Result<Vec<ContainerInfo>> {
        let call = self.inner.list(label, value);
        bounded("list containers", self.deadlines.call, call).await
    }

    async fn rename(&self, id: &str, name: &str) -> Result<()> {
        let call = self.inner.rename(id, name);
        bounded("rename a container", self.deadlines.call, call).await
    }

    async fn commit(
        &self,
        id: &str,
        repo: &str,
        tag: &str,
        opts: &CommitOptions,
    ) -> Result<String> {
        let call = self.inner.commit(id, repo, tag, opts);
        bounded("commit a container", self.deadlines.commit, call).await
    }

    async fn read_file(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let call = self.inner.read_file(id, path);
        bounded("read a file of a container", self.deadlines.call, call).await
    }

    fn faults(&self) -> Option<&dyn Faults> {
        self.inner.faults()
    }

    /// Not bounded per call: a snapshot job bounds itself (pull 15 min, build 30 min).
    fn image_engine(&self) -> Option<&dyn super::images::ImageEngine> {
        self.inner.image_engine()
    }

    fn env_in_requests(&self) -> bool {
        self.inner.env_in_requests()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::fake::FakeRuntime;
    use cove_runner_api::fake::{FakeDelay, FakeOp};

    #[tokio::test]
    async fn a_hanging_call_ends_at_its_deadline() {
        let dir = tempfile::tempdir().expect("tmp");
        let fake = FakeRuntime::new(dir.path().to_path_buf(), &["img:1".to_owned()]);
        let rt = Timed::new(
            fake,
            Deadlines {
                call: Duration::from_millis(50),
                commit: Duration::from_millis(50),
            },
        );
        rt.faults().expect("fake").delay(&FakeDelay {
            op: FakeOp::Put,
            seconds: None,
            times: None,
        });
        let spec = ContainerSpec {
            name: "c".into(),
            image: "img:1".into(),
            ..Default::default()
        };
        let err = rt.create(&spec).await.expect_err("hangs");
        assert!(matches!(err, RuntimeError::Timeout { .. }), "{err:?}");
        // The fault was used up: the next call goes through.
        rt.create(&spec).await.expect("second create");
    }
}
