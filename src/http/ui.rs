//! The browser UI: the console (`/`), administration (`/admin`), the visitor
//! widget (`/widget.js`) and a sample website embedding it (`/demo`).
//!
//! The files in `web/` are compiled into the binary, so the server runs from
//! anywhere with nothing to deploy beside it.

use actix_web::http::header::{self, ContentType};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::client::client_origin;
use crate::domain::ChannelId;
use crate::error::ApiError;
use crate::hub::Hub;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset { path: "/", content_type: "text/html; charset=utf-8", body: include_str!("../../web/index.html") },
    Asset { path: "/admin", content_type: "text/html; charset=utf-8", body: include_str!("../../web/admin.html") },
    Asset { path: "/app.css", content_type: "text/css; charset=utf-8", body: include_str!("../../web/app.css") },
    Asset { path: "/api.js", content_type: "text/javascript; charset=utf-8", body: include_str!("../../web/api.js") },
    Asset { path: "/console.js", content_type: "text/javascript; charset=utf-8", body: include_str!("../../web/console.js") },
    Asset { path: "/admin.js", content_type: "text/javascript; charset=utf-8", body: include_str!("../../web/admin.js") },
    Asset { path: "/widget.js", content_type: "text/javascript; charset=utf-8", body: include_str!("../../web/widget.js") },
    // Chart.js 4.6.1 (MIT, web/vendor/chart.js-LICENSE.md), for the routing report's charts.
    Asset {
        path: "/vendor/chart.umd.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/vendor/chart.umd.min.js"),
    },
];

const DEMO_PAGE: &str = include_str!("../../web/demo.html");

/// The console's pages only load their own scripts and talk to their own origin.
const PAGE_POLICY: &str =
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

/// Registers a route per embedded file.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for asset in ASSETS {
        cfg.service(web::resource(asset.path).get(move || async move { serve(asset) }));
    }
    cfg.service(web::resource("/demo").get(demo));
}

fn serve(asset: &Asset) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    res.content_type(asset.content_type).insert_header((header::CACHE_CONTROL, "no-cache"));
    if asset.content_type.starts_with("text/html") {
        res.insert_header((header::CONTENT_SECURITY_POLICY, PAGE_POLICY)).insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    }
    res.body(asset.body)
}

#[derive(Debug, Deserialize)]
pub struct DemoQuery {
    channel: Option<ChannelId>,
}

/// The sample website, embedding the widget for `?channel=` or, by default,
/// the first channel with a chatbot (else the first channel).
async fn demo(req: HttpRequest, hub: web::Data<Hub>, query: web::Query<DemoQuery>) -> Result<HttpResponse, ApiError> {
    let channel = {
        let directory = hub.directory();
        match query.channel {
            Some(id) => directory.channel(id).map(|c| c.id),
            None => directory.channels().find(|c| c.chatbot_id.is_some()).or_else(|| directory.channels().next()).map(|c| c.id),
        }
    };
    let Some(channel) = channel else {
        // A person followed a link here: tell them what to do, in a page.
        return Ok(HttpResponse::NotFound()
            .content_type(ContentType::html())
            .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_POLICY))
            .body(NO_CHANNEL_PAGE));
    };
    let origin = client_origin(&req);
    let page = DEMO_PAGE.replace("{{CHANNEL}}", &channel.to_string()).replace("{{ORIGIN}}", &escape_html(&origin));
    Ok(HttpResponse::Ok().content_type(ContentType::html()).insert_header((header::CACHE_CONTROL, "no-cache")).body(page))
}

/// `/demo` when there is no such channel (or none at all yet).
const NO_CHANNEL_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>No channel yet · Switchboard</title>\
<link rel=\"stylesheet\" href=\"/app.css\"></head><body><main class=\"pane\"><h1>No channel to demonstrate yet</h1>\
<p>The demo page embeds the chat widget of a channel. Create one in <a href=\"/admin#channels\">Administration → Channels</a> \
(give it operators, and a chatbot if you like), then come back here or use its <em>Try it</em> link.</p></main></body></html>";

/// The `Host` header is the client's to choose: never echo it as markup.
fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}
