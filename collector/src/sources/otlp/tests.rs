//! Names, translation into the store, both servers over real loopback sockets, and the decoders
//! under arbitrary input.

mod decoders;
mod fixtures;
mod server;
mod translate;
