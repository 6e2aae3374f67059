//! The few HTML pages `trials-local` serves (checkout, success, cancel): one layout, and every
//! value that came from a request or the store escaped.
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// `s` safe inside an element or a double-quoted attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page. `title` is escaped here; `body` is HTML the caller built with [`escape`].
/// `refresh_secs`: reload the page after that long (a result still on its way).
pub fn page(status: StatusCode, title: &str, body: &str, refresh_secs: Option<u32>) -> Response {
    let refresh = refresh_secs
        .map(|s| format!(r#"<meta http-equiv="refresh" content="{s}">"#))
        .unwrap_or_default();
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">{refresh}
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem; color: #1a1f36; }}
.card {{ border: 1px solid #e3e8ee; border-radius: 8px; padding: 1.5rem; }}
.price {{ font-size: 2rem; font-weight: 600; margin: .25rem 0; }}
.muted {{ color: #697386; font-size: .875rem; }}
.status {{ font-weight: 700; }}
form {{ margin: .5rem 0; }}
button {{ width: 100%; padding: .75rem; font-size: 1rem; border-radius: 6px; border: 1px solid #635bff; cursor: pointer; }}
button.primary {{ background: #635bff; color: white; }}
button.secondary {{ background: white; color: #635bff; }}
.banner {{ background: #fff8e1; border: 1px solid #f5d06f; border-radius: 6px; padding: .5rem .75rem; font-size: .875rem; }}
</style></head>
<body>
<p class="banner">Local Stripe stand-in of <code>trials-local</code>: no card, no money.</p>
{body}
</body></html>"#,
        title = escape(title),
    );
    (status, Html(html)).into_response()
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("growth"), "growth");
    }
}
