//! The names most programs need: `use tensorpool::prelude::*;`.

pub use crate::consumer::{
    Consumer, ConsumerAgent, ConsumerBuilder, ConsumerState, DropCause, FrameHandler, Mode,
    Progress,
};
pub use crate::context::Context;
pub use crate::frame::{Dtype, Frame, MajorOrder, TensorSpec};
pub use crate::producer::{Claim, Producer, ProducerBuilder};
pub use crate::streams::{Endpoint, Streams};
