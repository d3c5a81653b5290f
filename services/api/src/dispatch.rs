//! Dispatch: each routed operation to its handler (the core's, or a resource file's `handle`).

use crate::error::ApiError;
use crate::request::Ctx;
use crate::response::Body;
use crate::router::Op;
use crate::{
    account, alerts, auth, channels, events, health, openapi, setup, tasks, timezones, tokens, ui,
};
use hyper::Response;

/// Run operation `op` of the request `ctx`.
pub async fn dispatch(ctx: &Ctx<'_>, op: Op) -> Result<Response<Body>, ApiError> {
    let state = ctx.state;
    match op {
        Op::GetHealth => Ok(health::get(state)),
        Op::GetOpenApi => Ok(openapi::get()),
        Op::ListTasks => Ok(tasks::list(&state.tasks)),
        Op::GetTask => tasks::get(&state.tasks, ctx.param()),
        Op::Events => events::get(&state.events, auth::still_valid(state, ctx.principal()?)),
        Op::ListAlerts => Ok(alerts::list(&state.alerts)),
        Op::GetChannels => channels::get(ctx),
        Op::PutEmail => channels::put_email(ctx),
        Op::PutWebhook => channels::put_webhook(ctx),
        Op::TestEmail => channels::test(ctx, channels::Kind::Email),
        Op::TestWebhook => channels::test(ctx, channels::Kind::Webhook),
        Op::GetSetup => setup::get(ctx),
        Op::SetupCode => setup::code(ctx),
        Op::SetupPassword => setup::password(ctx).await,
        Op::SetupHostname => setup::hostname(ctx),
        Op::SetupTimezone => setup::timezone(ctx),
        Op::SetupNtp => setup::ntp(ctx),
        Op::SetupComplete => setup::complete(ctx),
        Op::Login => account::login(ctx).await,
        Op::Logout => account::logout(ctx),
        Op::Me => account::me(ctx),
        Op::ChangePassword => account::change_password(ctx).await,
        Op::ListTokens => tokens::list_tokens(ctx),
        Op::CreateToken => tokens::create_token(ctx),
        Op::RevokeToken => tokens::revoke_token(ctx),
        Op::ListTimezones => Ok(timezones::get(ctx)),
        Op::GetTime => crate::time::get(ctx).await,
        Op::PutTime => crate::time::put(ctx).await,
        Op::UiIndex => Ok(ui::index(ctx)),
        Op::UiAsset => ui::asset(ctx),
        Op::Storage(o) => crate::storage::handle(ctx, o).await,
        Op::Shares(o) => crate::shares::handle(ctx, o).await,
        Op::Smart(o) => crate::smart::handle(ctx, o).await,
        Op::Network(o) => crate::network::handle(ctx, o).await,
        Op::SetupNetwork(o) => crate::setup_network::handle(ctx, o).await,
        Op::Vms(o) => crate::vms::handle(ctx, o).await,
        Op::Images(o) => crate::images::handle(ctx, o).await,
        Op::Cluster(o) => crate::cluster::handle(ctx, o).await,
    }
}
