//! Declarative access control. Every route of the API is added through [`Routes`], which is
//! created with the minimum role of its routes (or, for the login alone, as public) and only
//! accepts handlers collected by `utoipa_axum::routes!`. So each route is in the OpenAPI
//! document by construction, its role is enforced by a gate layer on exactly those routes, and
//! the same role is written into its OpenAPI operation (`x-required-role`, `security`). The test
//! in this file (`tests::every_route_requires_authentication_and_its_role`) walks the generated
//! document and checks every operation.
//!
//! ```ignore
//! Routes::role(Role::FieldService).routes(routes!(list_devices, get_device))
//! ```

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::SecurityRequirement;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use super::auth::{self, Authenticated};
use super::{ApiError, AppState};
use crate::accounts::Role;

/// The OpenAPI extension naming an operation's minimum role (`field-service`, `fleet-manager`,
/// `admin`) or `public`.
pub const ROLE_EXTENSION: &str = "x-required-role";
/// The security scheme names in the OpenAPI document.
pub const BEARER_SCHEME: &str = "bearer";
pub const SESSION_SCHEME: &str = "session";

/// Who may call a group of routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials. Only for logging in; the enumeration test lists the
    /// public routes explicitly.
    Public,
    /// An authenticated caller with at least this role.
    Role(Role),
}

impl Access {
    pub fn name(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Role(role) => role.as_str(),
        }
    }
}

/// Routes sharing one minimum role. The only way to put a route into the API (see `app()`).
pub struct Routes {
    access: Access,
    router: OpenApiRouter<AppState>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<&String> = self.router.get_openapi().paths.paths.keys().collect();
        f.debug_struct("Routes")
            .field("access", &self.access)
            .field("paths", &paths)
            .finish()
    }
}

impl Routes {
    /// Routes that need an authenticated caller with at least `role`.
    pub fn role(role: Role) -> Routes {
        Routes {
            access: Access::Role(role),
            router: OpenApiRouter::default(),
        }
    }

    /// Routes anyone may call. Deliberately not `pub`: only `http` itself decides that.
    pub(super) fn public() -> Routes {
        Routes {
            access: Access::Public,
            router: OpenApiRouter::default(),
        }
    }

    /// Adds handlers collected with `utoipa_axum::routes!` (each with a `#[utoipa::path]`).
    pub fn routes(mut self, routes: UtoipaMethodRouter<AppState>) -> Routes {
        self.router = self.router.routes(routes);
        self
    }

    pub fn access(&self) -> Access {
        self.access
    }

    /// The router with its gate, and its OpenAPI operations annotated with the access.
    pub(super) fn into_router(self, state: &AppState) -> OpenApiRouter<AppState> {
        let mut router = self.router;
        let access = self.access;
        for item in router.get_openapi_mut().paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                annotate(operation, access);
            }
        }
        match access {
            Access::Public => router,
            Access::Role(role) => router.route_layer(axum::middleware::from_fn_with_state(
                (state.clone(), role),
                gate,
            )),
        }
    }
}

fn annotate(operation: &mut Operation, access: Access) {
    operation
        .extensions
        .get_or_insert_with(Default::default)
        .insert(ROLE_EXTENSION.to_owned(), access.name().into());
    operation.security = Some(match access {
        // An empty requirement: no credentials needed.
        Access::Public => vec![SecurityRequirement::default()],
        Access::Role(_) => vec![
            SecurityRequirement::new(BEARER_SCHEME, Vec::<String>::new()),
            SecurityRequirement::new(SESSION_SCHEME, Vec::<String>::new()),
        ],
    });
    let note = match access {
        Access::Public => "No authentication.".to_owned(),
        Access::Role(role) => format!("Requires the role `{role}` or higher."),
    };
    operation.description = Some(match operation.description.take() {
        Some(text) if !text.is_empty() => format!("{text}\n\n{note}"),
        _ => note,
    });
}

/// Raises the request body limit (axum's default is 2 MB) for the given routes only.
pub fn with_body_limit(
    (schemas, paths, method_router): UtoipaMethodRouter<AppState>,
    bytes: usize,
) -> UtoipaMethodRouter<AppState> {
    (
        schemas,
        paths,
        method_router.layer(DefaultBodyLimit::max(bytes)),
    )
}

/// The gate in front of every non-public route: authenticate (401), check CSRF for cookie
/// writes (403 `csrf_token_required`), check the role (403 `forbidden`), then hand the
/// [`Authenticated`] caller to the handler through the request extensions.
async fn gate(
    State((state, required)): State<(AppState, Role)>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let authenticated = auth::authenticate(&state, request.method(), request.headers())
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let role = authenticated.principal.role;
    if !role.allows(required) {
        return Err(ApiError::Forbidden {
            required,
            actual: role,
        });
    }
    request
        .extensions_mut()
        .insert::<Authenticated>(authenticated);
    Ok(next.run(request).await)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    //! The route-enumeration test: every operation of the generated OpenAPI document (which is
    //! every route, see [`Routes`]) is checked for 401 without credentials, 403 with each role
    //! below its declared one, and neither with its role and above.

    use std::collections::BTreeMap;

    use axum::http::{Method, StatusCode};

    use super::super::openapi_document;
    use super::super::test_util::*;
    use super::*;

    /// The routes that need no credentials, listed on purpose: a new public route must be
    /// added here by hand, in review.
    const PUBLIC: [(&str, &str); 1] = [("post", "/api/v1/auth/login")];

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "patch", "head", "options", "trace",
    ];

    /// A concrete URI for an OpenAPI path: every `{parameter}` becomes a plausible value.
    fn concrete(path: &str) -> String {
        let mut out = String::new();
        let mut rest = path;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').unwrap() + start;
            out.push_str("no-such-thing-1");
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    #[tokio::test]
    async fn every_route_requires_authentication_and_its_role() {
        let app = TestApp::new().await;
        let mut tokens = BTreeMap::new();
        for role in Role::ALL {
            tokens.insert(role, app.token(role).await);
        }
        app.user("admin-user", Role::Admin).await;
        let login = app.login("admin-user", PASSWORD).await;

        let doc = serde_json::to_value(openapi_document(&app.state)).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut checked = 0;
        for (path, item) in paths {
            for (method_name, operation) in item.as_object().unwrap() {
                if !METHODS.contains(&method_name.as_str()) {
                    continue;
                }
                let what = format!("{} {path}", method_name.to_uppercase());
                let declared = operation[ROLE_EXTENSION]
                    .as_str()
                    .unwrap_or_else(|| panic!("{what} declares no {ROLE_EXTENSION}"));
                if declared == "public" {
                    assert!(
                        PUBLIC.contains(&(method_name.as_str(), path.as_str())),
                        "{what} is public but not in the PUBLIC list"
                    );
                    continue;
                }
                let required: Role = declared.parse().unwrap();
                let method = Method::from_bytes(method_name.to_uppercase().as_bytes()).unwrap();
                let uri = concrete(path);
                let send = |auth| app.request(method.clone(), &uri, auth, None, Vec::new());

                let response = send(Auth::None).await;
                assert_eq!(
                    response.status,
                    StatusCode::UNAUTHORIZED,
                    "{what} without credentials"
                );
                let response = send(Auth::Bearer("ferrite_not-a-real-token")).await;
                assert_eq!(
                    response.status,
                    StatusCode::UNAUTHORIZED,
                    "{what} with a wrong token"
                );
                let response = send(Auth::Cookie {
                    session: "not-a-session",
                    csrf: None,
                })
                .await;
                assert_eq!(
                    response.status,
                    StatusCode::UNAUTHORIZED,
                    "{what} with a wrong cookie"
                );

                for (role, token) in &tokens {
                    let response = send(Auth::Bearer(token)).await;
                    if role.allows(required) {
                        assert!(
                            !matches!(
                                response.status,
                                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                            ),
                            "{what} refused {role} (needs {required}): {} {}",
                            response.status,
                            response.text()
                        );
                        assert!(
                            !response.text().contains("no such route"),
                            "{what} is in the OpenAPI document but not in the router"
                        );
                    } else {
                        assert_eq!(
                            response.status,
                            StatusCode::FORBIDDEN,
                            "{what} with {role} (needs {required})"
                        );
                        assert_eq!(response.json()["error"], "forbidden", "{what}");
                    }
                }

                if method != Method::GET && method != Method::HEAD {
                    // An admin's session cookie without the CSRF token changes nothing.
                    let response = send(Auth::Cookie {
                        session: &login.session,
                        csrf: None,
                    })
                    .await;
                    assert_eq!(
                        response.status,
                        StatusCode::FORBIDDEN,
                        "{what} cookie w/o CSRF"
                    );
                    assert_eq!(response.json()["error"], "csrf_token_required", "{what}");
                }
                checked += 1;
            }
        }
        for (method, path) in PUBLIC {
            assert_eq!(
                paths[path][method][ROLE_EXTENSION], "public",
                "{method} {path} is listed as public but is not in the document as such"
            );
        }
        assert!(
            checked >= 4,
            "only {checked} operations found: is the document empty?"
        );
    }

    #[tokio::test]
    async fn the_document_declares_security_and_roles() {
        let app = TestApp::new().await;
        let doc = serde_json::to_value(openapi_document(&app.state)).unwrap();
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes[BEARER_SCHEME]["scheme"], "bearer");
        assert_eq!(schemes[SESSION_SCHEME]["in"], "cookie");
        let me = &doc["paths"]["/api/v1/me"]["get"];
        assert_eq!(me[ROLE_EXTENSION], "field-service");
        assert_eq!(me["security"][0][BEARER_SCHEME], serde_json::json!([]));
        assert!(
            me["description"]
                .as_str()
                .unwrap()
                .contains("Requires the role `field-service`")
        );
        // Served, and the same as generated.
        let (status, served) = app.get("/api/v1/openapi.json", Auth::Bearer(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(served, doc);
    }
}
