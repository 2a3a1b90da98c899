//! Stage 4: the executor, which applies a [`Plan`](crate::plan::Plan) to the kernel.

#[allow(unsafe_code)]
pub mod sys;
