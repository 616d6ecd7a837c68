//! The RP's only door to the network: a small request/response trait. The reqwest (rustls)
//! implementation is the default; tests and embedders may plug their own.

use async_trait::async_trait;

use crate::RpError;

/// An HTTP request.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// method
    pub method: String,
    /// absolute URL
    pub url: String,
    /// headers
    pub headers: Vec<(String, String)>,
    /// body
    pub body: Option<Vec<u8>>,
}

impl HttpRequest {
    /// A GET.
    pub fn get(url: &str) -> Self {
        HttpRequest {
            method: "GET".into(),
            url: url.into(),
            headers: vec![],
            body: None,
        }
    }

    /// A form POST.
    pub fn post_form(url: &str, body: Vec<u8>) -> Self {
        HttpRequest {
            method: "POST".into(),
            url: url.into(),
            headers: vec![(
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: Some(body),
        }
    }

    /// Add a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// status code
    pub status: u16,
    /// headers, names lower-cased
    pub headers: Vec<(String, String)>,
    /// body
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// From an `http` response's parts: header names lower-cased, values that are not
    /// visible ASCII dropped.
    #[cfg(feature = "http")]
    pub fn from_parts(status: u16, headers: &reqwest::header::HeaderMap, body: Vec<u8>) -> Self {
        HttpResponse {
            status,
            headers: headers
                .iter()
                .filter_map(|(k, v)| {
                    v.to_str()
                        .ok()
                        .map(|v| (k.as_str().to_ascii_lowercase(), v.to_owned()))
                })
                .collect(),
            body,
        }
    }

    /// A header value by (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends requests.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Send one request (no redirects followed).
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, RpError>;
}

/// reqwest with rustls, no redirects.
#[cfg(feature = "http")]
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

#[cfg(feature = "http")]
impl ReqwestTransport {
    /// A transport that follows no redirects.
    pub fn new() -> Result<Self, RpError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RpError::http("(building the client)", e))?;
        Ok(ReqwestTransport { client })
    }

    /// Over an existing client (e.g. with extra roots).
    pub fn with_client(client: reqwest::Client) -> Self {
        ReqwestTransport { client }
    }
}

#[cfg(feature = "http")]
#[async_trait]
impl Transport for ReqwestTransport {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, RpError> {
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|e| RpError::http(&req.url, e))?;
        let mut b = self.client.request(method, &req.url);
        for (k, v) in &req.headers {
            b = b.header(k, v);
        }
        if let Some(body) = req.body {
            b = b.body(body);
        }
        let r = b.send().await.map_err(|e| RpError::http(&req.url, e))?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r
            .bytes()
            .await
            .map_err(|e| RpError::http(&req.url, e))?
            .to_vec();
        Ok(HttpResponse::from_parts(status, &headers, body))
    }
}
