//! An in-memory [`ContainerRuntime`] for unit tests (no processes, no toolbox).

use std::collections::HashMap;
use std::sync::Mutex;

use super::{ContainerInfo, ContainerRuntime, ContainerSpec, ImageInfo, Result, RuntimeError};

#[derive(Default)]
pub struct FakeRuntime {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    images: HashMap<String, ImageInfo>,
    containers: HashMap<String, (ContainerSpec, ContainerInfo)>,
    next: u64,
    /// Every call, for assertions (`create:<name>`, `start:<id>`, ...).
    calls: Vec<String>,
}

impl FakeRuntime {
    pub fn with_image(image: &str) -> Self {
        let rt = Self::default();
        rt.add_image(image);
        rt
    }

    pub fn add_image(&self, image: &str) {
        let mut g = self.lock();
        g.images.insert(
            image.to_owned(),
            ImageInfo {
                id: format!("sha256:{image}"),
                user: Some("daytona".into()),
                working_dir: Some("/home/daytona".into()),
                entrypoint: vec![],
                cmd: vec!["sleep".into(), "infinity".into()],
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// The spec a container was created with.
    pub fn spec_of(&self, id: &str) -> Option<ContainerSpec> {
        self.lock().containers.get(id).map(|(s, _)| s.clone())
    }

    pub fn container_count(&self) -> usize {
        self.lock().containers.len()
    }
}

fn find<'a>(g: &'a mut Inner, id: &str) -> Option<&'a mut (ContainerSpec, ContainerInfo)> {
    let key = g
        .containers
        .iter()
        .find(|(k, (_, info))| *k == id || info.name == id)
        .map(|(k, _)| k.clone())?;
    g.containers.get_mut(&key)
}

#[async_trait::async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn image(&self, image: &str) -> Result<Option<ImageInfo>> {
        Ok(self.lock().images.get(image).cloned())
    }

    async fn image_tags(&self) -> Result<Vec<String>> {
        let mut tags: Vec<String> = self.lock().images.keys().cloned().collect();
        tags.sort();
        Ok(tags)
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        let mut g = self.lock();
        if !g.images.contains_key(&spec.image) {
            return Err(RuntimeError::NotFound(spec.image.clone()));
        }
        if g.containers.values().any(|(_, i)| i.name == spec.name) {
            return Err(RuntimeError::Conflict(spec.name.clone()));
        }
        g.next += 1;
        let id = format!("c{:063}", g.next);
        let run_dir = spec.binds.iter().find_map(|b| {
            let mut parts = b.split(':');
            let src = parts.next()?;
            (parts.next()? == super::RUN_DIR_IN_CONTAINER).then(|| src.into())
        });
        let info = ContainerInfo {
            id: id.clone(),
            name: spec.name.clone(),
            image: spec.image.clone(),
            labels: spec.labels.clone(),
            running: false,
            status: "created".into(),
            run_dir,
        };
        g.calls.push(format!("create:{}", spec.name));
        g.containers.insert(id.clone(), (spec.clone(), info));
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<()> {
        let mut g = self.lock();
        g.calls.push(format!("start:{id}"));
        let (_, info) = find(&mut g, id).ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        info.running = true;
        info.status = "running".into();
        Ok(())
    }

    async fn stop(&self, id: &str, timeout_secs: u32) -> Result<()> {
        let mut g = self.lock();
        g.calls.push(format!("stop:{id}:{timeout_secs}"));
        let (_, info) = find(&mut g, id).ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        info.running = false;
        info.status = "exited".into();
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let mut g = self.lock();
        g.calls.push(format!("remove:{id}"));
        let key = find(&mut g, id).map(|(_, i)| i.id.clone());
        if let Some(k) = key {
            g.containers.remove(&k);
        }
        Ok(())
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>> {
        let mut g = self.lock();
        Ok(find(&mut g, id).map(|(_, i)| i.clone()))
    }

    async fn list(&self, label: &str, value: &str) -> Result<Vec<ContainerInfo>> {
        Ok(self
            .lock()
            .containers
            .values()
            .filter(|(_, i)| i.labels.get(label).map(String::as_str) == Some(value))
            .map(|(_, i)| i.clone())
            .collect())
    }

    async fn rename(&self, id: &str, name: &str) -> Result<()> {
        let mut g = self.lock();
        g.calls.push(format!("rename:{id}:{name}"));
        let (_, info) = find(&mut g, id).ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        info.name = name.to_owned();
        Ok(())
    }

    async fn commit(&self, id: &str, repo: &str, tag: &str) -> Result<String> {
        let mut g = self.lock();
        find(&mut g, id).ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        let image = format!("{repo}:{tag}");
        g.images.insert(
            image.clone(),
            ImageInfo {
                id: format!("sha256:{image}"),
                ..Default::default()
            },
        );
        Ok(format!("sha256:{image}"))
    }
}
