//! `Context` (the Aeron connection: an embedded media driver or an external one) and
//! `DriverEndpoints` (where an SHM driver listens, for driver mode).

use std::path::PathBuf;
use std::time::Duration;

use pyo3::prelude::*;
use tensorpool::prelude::Context as TpContext;
use tensorpool::streams::{DEFAULT_CHANNEL, DriverEndpoints as TpEndpoints, Endpoint};
use tensorpool_aeron::{AeronClient, MediaDriverConfig};

use crate::TensorpoolError;
use crate::types::opt_seconds;

/// The Aeron connection producers and consumers of this process share: an embedded Aeron
/// media driver (``Context.embedded()``) or an external one (``Context.connect()``).
/// Producers and consumers keep it alive while they exist.
#[pyclass(module = "tensorpool", unsendable)]
#[derive(Debug)]
pub struct Context {
    pub(crate) ctx: TpContext,
}

#[pymethods]
impl Context {
    /// Starts an embedded Aeron media driver in ``aeron_dir`` (``None``: a private directory
    /// under /dev/shm, removed at shutdown) and connects to it. Other processes connect to it
    /// with ``Context.connect(aeron_dir)``.
    #[staticmethod]
    #[pyo3(signature = (aeron_dir=None))]
    fn embedded(py: Python<'_>, aeron_dir: Option<PathBuf>) -> PyResult<Self> {
        let ctx = py
            .detach(|| match aeron_dir {
                None => TpContext::embedded(),
                Some(dir) => TpContext::embedded_with(MediaDriverConfig::default().dir(dir)),
            })
            .map_err(|e| TensorpoolError::new_err(format!("embedded media driver: {e}")))?;
        Ok(Self { ctx })
    }

    /// Connects to the Aeron media driver running in ``aeron_dir`` (``None``: the
    /// ``AERON_DIR`` environment variable), waiting at most ``timeout`` seconds.
    #[staticmethod]
    #[pyo3(signature = (aeron_dir=None, timeout=10.0))]
    fn connect(py: Python<'_>, aeron_dir: Option<PathBuf>, timeout: f64) -> PyResult<Self> {
        let dir = match aeron_dir.or_else(|| std::env::var_os("AERON_DIR").map(PathBuf::from)) {
            Some(d) => d,
            None => {
                return Err(TensorpoolError::new_err(
                    "Context.connect: no aeron_dir given and AERON_DIR is not set",
                ));
            }
        };
        let timeout = crate::types::seconds("timeout", timeout)?;
        let client = py
            .detach(|| AeronClient::connect(&dir, timeout))
            .map_err(|e| {
                TensorpoolError::new_err(format!(
                    "connect to the media driver in {}: {e}",
                    dir.display()
                ))
            })?;
        Ok(Self {
            ctx: TpContext::from_client(client),
        })
    }

    /// The Aeron directory in use.
    #[getter]
    fn aeron_dir(&self) -> String {
        self.ctx.aeron_dir().to_string_lossy().into_owned()
    }

    /// Whether this context runs its own (embedded) media driver.
    #[getter]
    fn is_embedded(&self) -> bool {
        self.ctx.is_embedded()
    }

    fn __repr__(&self) -> String {
        format!(
            "Context(aeron_dir={:?}, embedded={})",
            self.ctx.aeron_dir(),
            self.ctx.is_embedded()
        )
    }
}

/// Where an SHM driver listens (its ``driver.control_*`` / ``driver.announce_*`` keys) and
/// the client's timers. Pass it as ``driver=`` to ``Producer`` / ``Consumer`` for driver
/// mode (``driver=True`` uses these defaults: IPC stream 1000 for both).
#[pyclass(module = "tensorpool", from_py_object)]
#[derive(Clone, Debug)]
pub struct DriverEndpoints {
    pub(crate) inner: TpEndpoints,
}

#[pymethods]
impl DriverEndpoints {
    /// Every argument defaults to the Driver Model defaults: ``control_channel``
    /// ``aeron:ipc?term-length=4m`` stream 1000, the announce stream = the control stream,
    /// keepalive and announce period 1 s, attach timeout 10 s (durations in seconds).
    #[new]
    #[pyo3(signature = (control_channel=None, control_stream_id=None, announce_channel=None,
        announce_stream_id=None, keepalive_interval=None, announce_period=None,
        attach_timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        control_channel: Option<String>,
        control_stream_id: Option<i32>,
        announce_channel: Option<String>,
        announce_stream_id: Option<i32>,
        keepalive_interval: Option<f64>,
        announce_period: Option<f64>,
        attach_timeout: Option<f64>,
    ) -> PyResult<Self> {
        let d = TpEndpoints::default();
        let control_channel = control_channel.unwrap_or_else(|| DEFAULT_CHANNEL.to_owned());
        let announce_channel = announce_channel.unwrap_or_else(|| control_channel.clone());
        let control_stream_id = control_stream_id.unwrap_or(d.control.stream_id);
        let or = |v: Option<Duration>, d: Duration| v.unwrap_or(d);
        Ok(Self {
            inner: TpEndpoints {
                control: Endpoint::new(control_channel, control_stream_id),
                announce: Endpoint::new(
                    announce_channel,
                    announce_stream_id.unwrap_or(control_stream_id),
                ),
                keepalive_interval: or(
                    opt_seconds("keepalive_interval", keepalive_interval)?,
                    d.keepalive_interval,
                ),
                announce_period: or(
                    opt_seconds("announce_period", announce_period)?,
                    d.announce_period,
                ),
                attach_timeout: or(
                    opt_seconds("attach_timeout", attach_timeout)?,
                    d.attach_timeout,
                ),
            },
        })
    }

    fn __repr__(&self) -> String {
        let e = &self.inner;
        format!(
            "DriverEndpoints(control={:?}:{}, announce={:?}:{}, keepalive={:?}, attach_timeout={:?})",
            e.control.channel,
            e.control.stream_id,
            e.announce.channel,
            e.announce.stream_id,
            e.keepalive_interval,
            e.attach_timeout
        )
    }
}

/// `driver=` of a role: `None`/`False` standalone, `True` the defaults, or endpoints.
pub(crate) fn driver_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<TpEndpoints>> {
    let Some(obj) = obj else { return Ok(None) };
    if obj.is_none() {
        return Ok(None);
    }
    if let Ok(b) = obj.extract::<bool>() {
        return Ok(b.then(TpEndpoints::default));
    }
    match obj.extract::<DriverEndpoints>() {
        Ok(e) => Ok(Some(e.inner)),
        Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(
            "driver: expected None, a bool or a tensorpool.DriverEndpoints",
        )),
    }
}
