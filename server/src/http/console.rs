//! Serves the web console (the static files `scripts/console.sh` builds) at `/`: every path that
//! is not under `/api` and is not a file gets `index.html` (the console routes in the browser),
//! content-hashed files under `/assets/` are cached for a year, everything else is revalidated.
//!
//! The files are public on purpose: the login page must load before anyone has signed in. They
//! hold no data; every `/api` route keeps its own role check (`access.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::any;
use tower_http::services::{ServeDir, ServeFile};

use crate::config::Config;

/// Where `scripts/console.sh` writes the content-hashed files; a missing one is a 404, never
/// `index.html` (a stale page asking for an old module must fail loudly, not parse HTML as wasm).
const ASSETS_PREFIX: &str = "/assets/";

/// Hashed names change whenever their content does, so a browser may keep them for good.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `index.html` (and any unhashed file) is revalidated on every load (Last-Modified → 304), so a
/// new build is picked up at once.
const REVALIDATE: &str = "no-cache";

/// No inline scripts (index.html loads `assets/boot-<hash>.js`); `wasm-unsafe-eval` lets the
/// page compile its WebAssembly; inline styles stay allowed for the components' `style=`;
/// `connect-src 'self'` covers fetch and the event stream; framing is refused (clickjacking).
const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
                   style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
                   frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'";

/// The router's fallback: the console for non-API paths, the API's JSON 404 under `/api`.
pub fn fallback(config: &Config) -> Router {
    let api = Router::new()
        .route("/api", any(api_not_found))
        .route("/api/{*rest}", any(api_not_found));
    let dir = console_dir(config);
    let router = match &dir {
        Some(dir) if dir.join("index.html").is_file() => {
            tracing::info!(dir = %dir.display(), "serving the web console");
            // Precompressed `.br`/`.gz` siblings written by the build go to browsers that take
            // them: no compression work per request.
            let index = ServeFile::new(dir.join("index.html"))
                .precompressed_br()
                .precompressed_gzip();
            let pages = ServeDir::new(dir)
                .precompressed_br()
                .precompressed_gzip()
                .fallback(index);
            // No fallback under /assets: an unknown asset is a plain 404.
            let assets = ServeDir::new(dir.join("assets"))
                .precompressed_br()
                .precompressed_gzip();
            api.nest_service("/assets", assets).fallback_service(pages)
        }
        _ => {
            match &dir {
                Some(dir) => tracing::warn!(
                    dir = %dir.display(),
                    "the console directory has no index.html: `/` explains how to build it"
                ),
                None => tracing::info!("no console build found: `/` explains how to build it"),
            }
            let page: Arc<str> = missing_page(dir.as_deref()).into();
            // `/` explains; any other path is not found (and explains too).
            api.fallback(move |uri: Uri| {
                let page = page.clone();
                async move {
                    let status = if uri.path() == "/" {
                        StatusCode::OK
                    } else {
                        StatusCode::NOT_FOUND
                    };
                    (status, Html(page.to_string()))
                }
            })
        }
    };
    router.layer(middleware::from_fn(policy))
}

async fn api_not_found(uri: Uri) -> Response {
    super::error::not_found(uri).await.into_response()
}

/// The directory the console is served from: the configured one, else the first that holds an
/// `index.html` of `<dir of the binary>/console` (an installed layout) and
/// `<dir of the binary>/../console-dist` (where `scripts/console.sh` writes beside
/// `$CARGO_TARGET_DIR/{debug,release}/ferrite`).
pub fn console_dir(config: &Config) -> Option<PathBuf> {
    if let Some(dir) = &config.console_dir {
        return Some(dir.clone());
    }
    let exe = std::env::current_exe().ok()?;
    let bin_dir = exe.parent()?;
    [bin_dir.join("console"), bin_dir.join("../console-dist")]
        .into_iter()
        .find(|dir| dir.join("index.html").is_file())
}

/// Read-only, and the cache policy and protections on every console answer.
async fn policy(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/api" || path.starts_with("/api/") {
        return next.run(request).await;
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let is_asset = path.starts_with(ASSETS_PREFIX);
    let mut response = next.run(request).await;
    let immutable = is_asset && response.status().is_success();
    with_headers(&mut response, immutable);
    response
}

/// Cache policy and the browser-side protections every console answer carries.
fn with_headers(response: &mut Response, immutable: bool) {
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable { IMMUTABLE } else { REVALIDATE }),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

fn missing_page(dir: Option<&Path>) -> String {
    let looked = match dir {
        Some(dir) => format!(
            "The console directory <code>{}</code> has no <code>index.html</code>.",
            html_escape(&dir.display().to_string())
        ),
        None => "No console build was found next to the <code>ferrite</code> binary.".to_owned(),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Ferrite</title>\
         </head><body>\n<h1>Ferrite</h1>\n<p>The web console is not built. {looked}</p>\n\
         <p>Build it with <code>bash scripts/console.sh</code> (or start everything with \
         <code>bash scripts/run.sh</code>), then point the server at the output with \
         <code>FERRITE_CONSOLE_DIR</code> (<code>--console-dir</code>, <code>console_dir</code> \
         in the configuration file) and restart it.</p>\n<p>The HTTP API is available under \
         <code>/api/v1</code> (see <code>/api/v1/openapi.json</code>).</p>\n</body></html>\n"
    )
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;
    use crate::http::test_util::{TOKEN, TestApp, TestResponse};

    const INDEX: &str = "<!doctype html><title>Ferrite</title><script type=module \
                         src=/assets/boot-0a1b2c3d.js></script>";
    const WASM: &[u8] = b"\0asm\x01\0\0\0";

    /// A dist directory like the one `scripts/console.sh` writes, and a secret beside it that
    /// must never be reachable.
    fn dist() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("secret.txt"), "do-not-serve").unwrap();
        let dist = root.path().join("console-dist");
        std::fs::create_dir_all(dist.join("assets")).unwrap();
        std::fs::write(dist.join("index.html"), INDEX).unwrap();
        std::fs::write(dist.join("index.html.gz"), b"gzipped index").unwrap();
        let wasm = dist.join("assets/console_bg-0123abcd.wasm");
        std::fs::write(&wasm, WASM).unwrap();
        std::fs::write(wasm.with_extension("wasm.gz"), b"gzipped wasm").unwrap();
        std::fs::write(wasm.with_extension("wasm.br"), b"brotli wasm").unwrap();
        std::fs::write(dist.join("assets/console-0123abcd.js"), "export default 1;").unwrap();
        (root, dist)
    }

    async fn app_with(console_dir: PathBuf) -> TestApp {
        TestApp::with_config(Config {
            api_token: Some(TOKEN.to_owned()),
            console_dir: Some(console_dir),
            ..Config::default()
        })
        .await
    }

    async fn call(
        app: &TestApp,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo(app.client));
        let response = app.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        TestResponse {
            status,
            headers,
            body: body.to_vec(),
        }
    }

    async fn get(app: &TestApp, uri: &str) -> TestResponse {
        call(app, Method::GET, uri, &[]).await
    }

    #[tokio::test]
    async fn index_is_public_revalidated_and_protected_by_a_csp() {
        let (_root, dist) = dist();
        let app = app_with(dist).await;
        let response = get(&app, "/").await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.text(), INDEX);
        assert!(
            response
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/html")),
            "{:?}",
            response.header("content-type")
        );
        assert_eq!(response.header("cache-control"), Some("no-cache"));
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(response.header("x-frame-options"), Some("DENY"));
        let csp = response.header("content-security-policy").unwrap();
        assert!(
            csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-eval'") || csp.contains("wasm-unsafe-eval"));

        // Revalidation: the same file again costs a 304 and no body.
        let modified = response.header("last-modified").unwrap().to_owned();
        let again = call(&app, Method::GET, "/", &[("if-modified-since", &modified)]).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
        assert!(again.body.is_empty());

        // The precompressed copy goes to browsers that take gzip.
        let gzip = call(&app, Method::GET, "/", &[("accept-encoding", "gzip")]).await;
        assert_eq!(gzip.header("content-encoding"), Some("gzip"));
        assert_eq!(gzip.body, b"gzipped index");
    }

    #[tokio::test]
    async fn hashed_assets_are_immutable_typed_and_precompressed() {
        let (_root, dist) = dist();
        let app = app_with(dist).await;
        let uri = "/assets/console_bg-0123abcd.wasm";

        let plain = get(&app, uri).await;
        assert_eq!(plain.status, StatusCode::OK);
        assert_eq!(plain.header("content-type"), Some("application/wasm"));
        assert_eq!(plain.header("content-encoding"), None);
        assert_eq!(plain.body, WASM);
        assert_eq!(
            plain.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );

        let gzip = call(&app, Method::GET, uri, &[("accept-encoding", "gzip")]).await;
        assert_eq!(gzip.header("content-type"), Some("application/wasm"));
        assert_eq!(gzip.header("content-encoding"), Some("gzip"));
        assert_eq!(gzip.body, b"gzipped wasm");

        let br = call(&app, Method::GET, uri, &[("accept-encoding", "gzip, br")]).await;
        assert_eq!(br.header("content-encoding"), Some("br"));
        assert_eq!(br.body, b"brotli wasm");

        let js = get(&app, "/assets/console-0123abcd.js").await;
        assert_eq!(js.status, StatusCode::OK);
        assert!(
            js.header("content-type")
                .is_some_and(|t| t.starts_with("text/javascript")),
            "{:?}",
            js.header("content-type")
        );

        // An asset that is not there is a 404 (never index.html parsed as a module), not cached.
        let missing = get(&app, "/assets/console_bg-ffffffff.wasm").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_ne!(missing.text(), INDEX);
        assert_eq!(missing.header("cache-control"), Some("no-cache"));
    }

    #[tokio::test]
    async fn console_routes_fall_back_to_the_index_but_the_api_does_not() {
        let (_root, dist) = dist();
        let app = app_with(dist).await;
        for uri in [
            "/login",
            "/devices/meter-0001",
            "/devices/meter.0001.v2",
            "/devices/a/b?x=1",
        ] {
            let response = get(&app, uri).await;
            assert_eq!(response.status, StatusCode::OK, "{uri}");
            assert_eq!(response.text(), INDEX, "{uri}");
            assert_eq!(response.header("cache-control"), Some("no-cache"), "{uri}");
        }

        // Unknown API paths keep the API's JSON 404; known ones keep their authentication.
        let response = get(&app, "/api/v1/no-such-route").await;
        assert_eq!(response.status, StatusCode::NOT_FOUND);
        assert_eq!(response.json()["error"], "not_found");
        let response = get(&app, "/api").await;
        assert_eq!(response.json()["error"], "not_found");
        let response = get(&app, "/api/v1/objects").await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED);

        // The console is read-only.
        let response = call(&app, Method::POST, "/devices/meter-0001", &[]).await;
        assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.header("allow"), Some("GET, HEAD"));
    }

    #[tokio::test]
    async fn nothing_outside_the_console_directory_is_reachable() {
        let (_root, dist) = dist();
        let app = app_with(dist).await;
        for uri in [
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/..%2fsecret.txt",
            "/assets/..%2f..%2fsecret.txt",
            "/assets/%2e%2e/%2e%2e/secret.txt",
        ] {
            let response = get(&app, uri).await;
            assert!(!response.text().contains("do-not-serve"), "{uri}");
        }
    }

    #[tokio::test]
    async fn without_a_build_the_root_says_how_to_make_one() {
        let root = tempfile::tempdir().unwrap();
        let app = app_with(root.path().join("not-built")).await;
        let response = get(&app, "/").await;
        assert_eq!(response.status, StatusCode::OK);
        assert!(
            response.text().contains("bash scripts/console.sh"),
            "{}",
            response.text()
        );
        assert!(response.text().contains("FERRITE_CONSOLE_DIR"));
        assert!(response.text().contains("not-built"));
        assert_eq!(response.header("cache-control"), Some("no-cache"));
        let response = get(&app, "/devices/meter-0001").await;
        assert_eq!(response.status, StatusCode::NOT_FOUND);
        assert!(response.text().contains("bash scripts/console.sh"));
        let response = get(&app, "/api/v1/no-such-route").await;
        assert_eq!(response.json()["error"], "not_found");
    }
}
