//! Ferrite's web console (Leptos, client-side rendered, compiled to WebAssembly). It is built by
//! the console issue; until then this crate only fixes its place and its dependencies
//! (`api-types` and `lwm2m-objects`, never the server).
