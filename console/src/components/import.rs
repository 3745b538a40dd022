//! CSV import of devices (fleet managers): pick a file, send it, and show every row's outcome,
//! including keys generated for rows without one (shown this once).

use api_types::{ImportReport, ImportStatus};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::api::{self, ApiError};

/// The text of the file chosen in the input with this id.
async fn chosen_file(input_id: &str) -> Result<(String, String), String> {
    let input = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(input_id))
        .and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok())
        .ok_or("The file input is missing")?;
    let file = input
        .files()
        .and_then(|files| files.get(0))
        .ok_or("Choose a CSV file first")?;
    let text = JsFuture::from(file.text())
        .await
        .map_err(|_| "The file could not be read".to_owned())?
        .as_string()
        .unwrap_or_default();
    Ok((file.name(), text))
}

#[component]
pub fn Import(on_done: impl Fn() + Copy + Send + Sync + 'static) -> impl IntoView {
    let report = RwSignal::new(None::<Result<ImportReport, String>>);
    let busy = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        spawn_local(async move {
            let result = match chosen_file("import-file").await {
                Err(why) => Err(why),
                Ok((_, text)) if text.trim().is_empty() => Err("The file is empty".to_owned()),
                Ok((_, text)) => match api::import_csv(text).await {
                    Ok(r) => Ok(r),
                    Err(ApiError::Unauthorized) => return,
                    Err(e) => Err(e.plain()),
                },
            };
            if result.is_ok() {
                on_done();
            }
            report.set(Some(result));
            busy.set(false);
        });
    };
    view! {
        <section class="card import" aria-labelledby="import-heading">
            <h2 id="import-heading">"Import devices"</h2>
            <p class="muted">
                "A CSV file with a header line: endpoint, serial, model, tags (k=v;k2=v2), "
                "psk_identity, psk_key_hex, customer. Rows without a key get a generated one."
            </p>
            <form class="import-form" on:submit=submit>
                <div class="field">
                    <label for="import-file">"Import CSV"</label>
                    <input id="import-file" type="file" accept=".csv,text/csv"/>
                </div>
                <button type="submit" class="button primary" disabled=move || busy.get()>
                    {move || if busy.get() { "Importing…" } else { "Import" }}
                </button>
            </form>
            {move || report.get().map(|r| match r {
                Err(why) => view! { <div class="alert" role="alert">{why}</div> }.into_any(),
                Ok(r) => view! { <ImportResult report=r/> }.into_any(),
            })}
        </section>
    }
}

#[component]
fn ImportResult(report: ImportReport) -> impl IntoView {
    let generated = report
        .rows
        .iter()
        .any(|r| r.generated_psk_key_hex.is_some());
    let headline = format!(
        "{} accepted, {} rejected{}",
        report.accepted,
        report.rejected,
        if report.not_attempted > 0 {
            format!(", {} not attempted", report.not_attempted)
        } else {
            String::new()
        }
    );
    let rows = report
        .rows
        .into_iter()
        .map(|row| {
            let (class, status) = match row.status {
                ImportStatus::Accepted => ("ok", "accepted"),
                ImportStatus::Rejected => ("bad", "rejected"),
                ImportStatus::NotAttempted => ("muted", "not attempted"),
            };
            view! {
                <tr class=class>
                    <td class="num">{row.line}</td>
                    <td>{row.endpoint}</td>
                    <td>{status}</td>
                    <td>{row.reason.unwrap_or_default()}</td>
                    <td>{row.psk_identity.unwrap_or_default()}</td>
                    <td class="mono">{row.generated_psk_key_hex.unwrap_or_default()}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="import-result">
            <p role="status"><strong>{headline}</strong></p>
            {report.aborted.map(|why| view! {
                <div class="alert" role="alert">{format!("The import stopped early: {why}")}</div>
            })}
            {(!report.ignored_columns.is_empty()).then(|| view! {
                <p class="muted">{format!("Columns not used: {}", report.ignored_columns.join(", "))}</p>
            })}
            {generated.then(|| view! {
                <p class="warning">"Generated keys are shown only here: copy them to the devices now."</p>
            })}
            <div class="table-wrap">
                <table aria-label="Import report" class="data">
                    <thead>
                        <tr>
                            <th scope="col">"Line"</th>
                            <th scope="col">"Endpoint"</th>
                            <th scope="col">"Outcome"</th>
                            <th scope="col">"Reason"</th>
                            <th scope="col">"PSK identity"</th>
                            <th scope="col">"Generated key"</th>
                        </tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        </div>
    }
}
