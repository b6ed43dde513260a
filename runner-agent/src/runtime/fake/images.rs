//! The simulated engine's image operations: a pull or build takes a short while and adds the
//! image; an image named `*/missing:*` cannot be pulled; a Dockerfile with `exit 3` fails its
//! step as Docker's classic builder does; a push only checks that the image exists. A
//! [`FakeOp::Snapshot`] delay applies to pulls and builds.

use std::io::Read;
use std::time::Duration;

use cove_runner_api::RegistryAuth;
use cove_runner_api::fake::FakeOp;

use super::{FakeImage, FakeRuntime, default_image, find_image};
use crate::runtime::images::{BuildRequest, ImageEngine, ImageError, ImageResult, LogSink};

/// How long a simulated pull or build takes.
const WORK: Duration = Duration::from_millis(150);

/// The `Dockerfile` at the root of a context tar.
fn dockerfile_of(context: &std::path::Path) -> ImageResult<String> {
    let failed = |e: std::io::Error| ImageError::Failed(format!("reading the build context: {e}"));
    let file = std::fs::File::open(context).map_err(failed)?;
    let mut tar = tar::Archive::new(file);
    for entry in tar.entries().map_err(failed)? {
        let mut entry = entry.map_err(failed)?;
        let is_dockerfile = entry
            .path()
            .is_ok_and(|p| p.as_os_str() == "Dockerfile" || p.as_os_str() == "./Dockerfile");
        if is_dockerfile {
            let mut s = String::new();
            entry.read_to_string(&mut s).map_err(failed)?;
            return Ok(s);
        }
    }
    Err(ImageError::Build(
        "Cannot locate specified Dockerfile: Dockerfile".into(),
    ))
}

impl FakeRuntime {
    fn record(&self, call: String) {
        self.lock().calls.push(call);
    }
}

#[async_trait::async_trait]
impl ImageEngine for FakeRuntime {
    async fn pull(
        &self,
        image: &str,
        _auth: Option<&RegistryAuth>,
        log: &dyn LogSink,
    ) -> ImageResult<()> {
        self.fault(FakeOp::Snapshot).await;
        tokio::time::sleep(WORK).await;
        self.record(format!("pull:{image}"));
        if image.contains("/missing:") {
            let repo = image.rsplit_once(':').map_or(image, |(r, _)| r);
            return Err(ImageError::Failed(format!(
                "pull access denied for {repo}, repository does not exist or may require 'docker login'"
            )));
        }
        log.line(&format!("Pulling from {image}"));
        log.line(&format!("Status: Downloaded newer image for {image}"));
        self.add_image(image);
        Ok(())
    }

    async fn build(&self, req: &BuildRequest, log: &dyn LogSink) -> ImageResult<()> {
        self.fault(FakeOp::Snapshot).await;
        let dockerfile = dockerfile_of(&req.context)?;
        tokio::time::sleep(WORK).await;
        self.record(format!("build:{}", req.tag));
        let steps: Vec<&str> = dockerfile
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        for (i, step) in steps.iter().enumerate() {
            log.line(&format!("Step {}/{} : {step}", i + 1, steps.len()));
            if let Some(cmd) = step.strip_prefix("RUN ")
                && cmd.contains("exit 3")
            {
                return Err(ImageError::Build(format!(
                    "The command '/bin/sh -c {cmd}' returned a non-zero code: 3"
                )));
            }
        }
        let mut info = default_image(&req.tag);
        info.labels = req.labels.clone();
        info.size_bytes = Some(1 << 20);
        log.line(&format!("Successfully tagged {}", req.tag));
        self.lock()
            .images
            .insert(req.tag.clone(), FakeImage { info, rootfs: None });
        Ok(())
    }

    async fn tag(&self, image: &str, target: &str) -> ImageResult<()> {
        let mut g = self.lock();
        let found = find_image(&g, image).map(|(_, i)| i.clone());
        let img = found.ok_or_else(|| ImageError::Failed(format!("No such image: {image}")))?;
        g.calls.push(format!("tag:{image}:{target}"));
        g.images.insert(target.to_owned(), img);
        Ok(())
    }

    async fn push(
        &self,
        target: &str,
        _auth: Option<&RegistryAuth>,
        log: &dyn LogSink,
    ) -> ImageResult<()> {
        let mut g = self.lock();
        if find_image(&g, target).is_none() {
            return Err(ImageError::Failed(format!(
                "An image does not exist locally with the tag: {target}"
            )));
        }
        g.calls.push(format!("push:{target}"));
        log.line(&format!("The push refers to repository [{target}]"));
        Ok(())
    }
}
