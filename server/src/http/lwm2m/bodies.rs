//! The JSON bodies of the device-operation routes (requests and answers), documented in the
//! OpenAPI schema. They live in `api_types::lwm2m` so the console sends and reads the very same
//! types; this module names them for the handlers. Values are
//! [`ValueOut`](api_types::lwm2m::ValueOut)s; errors are `DeviceErrorBody`s (`error.rs`).

pub use api_types::lwm2m::{
    CancelQuery, CancelResponse, CreateRequest, CreatedResponse, DiscoverResponse, DoneResponse,
    ExecuteRequest, LinkOut, ObservationOut, ObserveRequest, ObserveResponse, OperationStatus,
    PathErrorOut, PathRequest, PendingResponse, ReadRequest, ReadResponse, RegistrationOut,
    WriteAttributesRequest, WriteModeIn, WriteRequest,
};
