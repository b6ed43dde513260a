//! Host side of the Spin interfaces cove provides: `spin:variables/variables@3.0.0`.

use std::collections::HashMap;

use wasmtime::component::{Accessor, HasData, Linker};

use crate::manifest::is_variable_name;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "cove:host/host",
    });
}

use bindings::spin::variables::variables::{self as vars, Error as VarError};

/// What the Spin host traits see of the store: the variables this component may read.
pub struct SpinView<'a> {
    pub variables: &'a HashMap<String, String>,
}

pub struct Spin;

impl HasData for Spin {
    type Data<'a> = SpinView<'a>;
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> SpinView<'_>,
) -> wasmtime::Result<()> {
    vars::add_to_linker::<T, Spin>(linker, view)
}

impl vars::Host for SpinView<'_> {}

impl<T> vars::HostWithStore<T> for Spin {
    async fn get(accessor: &Accessor<T, Self>, name: String) -> Result<String, VarError> {
        if !is_variable_name(&name) {
            return Err(VarError::InvalidName(name));
        }
        // Only the names listed in `[component.<id>.variables]` are readable.
        match accessor.with(|mut access| access.get().variables.get(&name).cloned()) {
            Some(value) => Ok(value),
            None => Err(VarError::Undefined(format!(
                "no variable {name:?} for this component"
            ))),
        }
    }
}
