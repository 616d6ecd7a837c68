//! The API of `example_api` on a socket, configured from the environment (see
//! [`example_api::Settings::from_env`] and README.md).

use std::sync::Arc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("example-api: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), example_api::BoxError> {
    let settings = example_api::Settings::from_env()?;
    let verifier = Arc::new(example_api::verifier(&settings).await?);
    let listener = tokio::net::TcpListener::bind(&settings.listen).await?;
    println!(
        "API listening on {}, trusting {} for {}",
        settings.public_url,
        settings.issuer,
        settings.audiences.join(", ")
    );
    axum::serve(
        listener,
        example_api::router(verifier, settings.step_up.clone()),
    )
    .await?;
    Ok(())
}
