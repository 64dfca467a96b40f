//! Administrative requests to a running SHM driver from C (issue 18): the admin schema's
//! status, leases and streams queries, answered as JSON text, and the authenticated shutdown
//! request (Driver Model §4.13).

use std::ffi::{CString, c_char};
use std::time::Duration;

use tensorpool::client::{AdminError, AdminQuery, query_driver, request_shutdown};
use tensorpool_codec::AnyMessage;
use tensorpool_codec::driver::ShutdownReason;

use crate::driver::{endpoints, tp_driver_endpoints};
use crate::error::{FfiError, FfiResult, err, guard, tp_status, tp_status::*};
use crate::handles;

/// What [`tp_driver_query`] asks.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum tp_admin_query {
    /// `DriverStatusRequest`: state, pid, counts, counters.
    TP_ADMIN_STATUS = 0,
    /// `DriverLeasesRequest`: every lease.
    TP_ADMIN_LEASES = 1,
    /// `DriverStreamsRequest`: every stream.
    TP_ADMIN_STREAMS = 2,
}

/// Why a driver shuts down ([`tp_driver_request_shutdown`]).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum tp_shutdown_reason {
    /// A planned stop.
    TP_SHUTDOWN_NORMAL = 0,
    /// An operator's request.
    TP_SHUTDOWN_ADMIN = 1,
    /// An error.
    TP_SHUTDOWN_ERROR = 2,
}

fn admin_error(e: AdminError) -> FfiError {
    let code = match &e {
        AdminError::NoDriver { .. } | AdminError::NoAnswer(_) => TP_ERR_TIMEOUT,
        AdminError::Aeron(_) | AdminError::Send(_) => TP_ERR_AERON,
    };
    FfiError::new(code, e.to_string())
}

fn stream_id(e: &tp_driver_endpoints) -> FfiResult<(String, i32)> {
    let d = endpoints(e)?;
    Ok((d.control.channel, d.control.stream_id))
}

/// Asks the driver listening at `driver` (its control endpoint) and returns its answer as
/// JSON text in `*json` (free it with [`tp_string_free`]): the admin schema message with its
/// field names. `timeout_ms` 0: 5 s. `TP_ERR_TIMEOUT` when no driver listens or answers.
#[unsafe(no_mangle)]
pub extern "C" fn tp_driver_query(
    ctx: *mut crate::context::tp_context,
    driver: *const tp_driver_endpoints,
    query: u32,
    timeout_ms: u64,
    json: *mut *mut c_char,
) -> tp_status {
    guard("tp_driver_query", || {
        let json = handles::out(json, "json")?;
        *json = std::ptr::null_mut();
        let c = crate::context::get(ctx)?;
        let (channel, id) = stream_id(handles::input(driver, "driver")?)?;
        let q = match query {
            0 => AdminQuery::Status,
            1 => AdminQuery::Leases,
            2 => AdminQuery::Streams,
            q => {
                return err(
                    TP_ERR_INVALID_ARGUMENT,
                    format!("query {q} is not a tp_admin_query"),
                );
            }
        };
        let timeout = handles::ms_or(timeout_ms, Duration::from_secs(5));
        let bytes = query_driver(c.ctx.client(), &channel, id, q, timeout).map_err(admin_error)?;
        let msg = AnyMessage::decode(&bytes)
            .map_err(|e| FfiError::new(TP_ERR_AERON, format!("driver answer: {e}")))?;
        let text = serde_json::to_string(&msg)
            .map_err(|e| FfiError::new(TP_ERR_AERON, format!("driver answer: {e}")))?;
        let text = CString::new(text)
            .map_err(|_| FfiError::new(TP_ERR_AERON, "driver answer holds a NUL"))?;
        *json = text.into_raw();
        Ok(())
    })
}

/// Frees a string the library returned (`tp_driver_query`). NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn tp_string_free(s: *mut c_char) -> tp_status {
    guard("tp_string_free", || {
        if !s.is_null() {
            // SAFETY: the C API requires a string returned by this library (made by
            // `CString::into_raw`) and not freed before.
            drop(unsafe { CString::from_raw(s) });
        }
        Ok(())
    })
}

/// Sends `ShmDriverShutdownRequest` with `token` (the driver's `policies.shutdown_token`)
/// once a driver listens at `driver`; `reason` a `tp_shutdown_reason`, `message` may be NULL.
/// The driver does not answer (§4.13). `TP_ERR_TIMEOUT` when no driver listens.
#[unsafe(no_mangle)]
pub extern "C" fn tp_driver_request_shutdown(
    ctx: *mut crate::context::tp_context,
    driver: *const tp_driver_endpoints,
    token: *const c_char,
    reason: u32,
    message: *const c_char,
    timeout_ms: u64,
) -> tp_status {
    guard("tp_driver_request_shutdown", || {
        let c = crate::context::get(ctx)?;
        let (channel, id) = stream_id(handles::input(driver, "driver")?)?;
        let token = handles::string(token, "token")?;
        let reason = match reason {
            0 => ShutdownReason::Normal,
            1 => ShutdownReason::Admin,
            2 => ShutdownReason::Error,
            r => {
                return err(
                    TP_ERR_INVALID_ARGUMENT,
                    format!("reason {r} is not a tp_shutdown_reason"),
                );
            }
        };
        let message = handles::opt_string(message, "message")?.unwrap_or("");
        let timeout = handles::ms_or(timeout_ms, Duration::from_secs(5));
        request_shutdown(
            c.ctx.client(),
            &channel,
            id,
            token,
            reason,
            message,
            timeout,
        )
        .map_err(admin_error)?;
        Ok(())
    })
}
