//! The web app of `example_web_rp` on a socket, configured from the environment (see
//! [`example_web_rp::Settings::from_env`] and README.md).

use std::sync::Arc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("example-web-rp: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), example_web_rp::BoxError> {
    let settings = example_web_rp::Settings::from_env();
    let listener = tokio::net::TcpListener::bind(&settings.listen).await?;
    println!(
        "web app on {} (client {} at {}); open it in a browser",
        settings.public_url, settings.client_id, settings.issuer
    );
    let app = example_web_rp::WebRp::new(settings)?;
    axum::serve(listener, example_web_rp::router(Arc::new(app))).await?;
    Ok(())
}
