//! The names most programs need: `use tensorpool::prelude::*;`.

pub use crate::consumer::BuildError as ConsumerBuildError;
pub use crate::consumer::{
    Consumer, ConsumerAgent, ConsumerBuilder, ConsumerConfig, ConsumerCounters, ConsumerState,
    DropCause, FrameHandler, Mode, PollError, Progress,
};
pub use crate::context::Context;
pub use crate::frame::{Dtype, Frame, FrameKey, MajorOrder, SpecError, TensorSpec};
pub use crate::producer::BuildError as ProducerBuildError;
pub use crate::producer::{
    Claim, ClaimError, FrameStamp, Producer, ProducerBuilder, ProducerConfig, RegionMode,
};
pub use crate::streams::{Endpoint, Streams};
