//! `wxpush apps`: the configured apps and their token state; `wxpush apps put` writes one
//! app's SSM parameters.

pub mod list;
pub mod put;

pub use list::{apps_summary, apps_with_tokens, configured_apps};
pub use put::apps_put;

use super::Operator;
use crate::args::{AppsArgs, AppsCommand};
use crate::error::CliError;

pub async fn run(operator: &Operator, args: AppsArgs) -> Result<(), CliError> {
    match args.command {
        Some(AppsCommand::Put(put)) => put::run(operator, put).await,
        None => list::run(operator, args.apps, &args.ssm_prefix).await,
    }
}

/// SSM, through the standard AWS credential chain.
async fn ssm_client() -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&wxpush_shared::aws::load_sdk_config().await)
}
