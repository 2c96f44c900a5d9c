//! Generates the LND gRPC client (`lightning::lnd`) from the subset of lnd's
//! .proto files vendored in `src/lightning/lnd/proto`. protox is a protobuf
//! compiler in Rust, so building needs no `protoc`: crates.io alone.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO_DIR: &str = "src/lightning/lnd/proto";
    println!("cargo:rerun-if-changed={PROTO_DIR}");
    let descriptors = protox::compile(["lightning.proto", "router.proto"], [PROTO_DIR])?;
    tonic_prost_build::configure()
        .build_server(false)
        // No `connect` constructors: the channel is built by our connector.
        .build_transport(false)
        // These carry preimages: their Debug is written by hand, redacted.
        .skip_debug(["lnrpc.Payment", "lnrpc.Invoice"])
        .compile_fds(descriptors)?;
    Ok(())
}
