fn main() {
    // Prefer a protoc from the environment; otherwise use the vendored one (no system package
    // needed on a clean machine; toolchain.md §2).
    if std::env::var_os("PROTOC").is_none()
        && let Ok(path) = protoc_bin_vendored::protoc_bin_path()
    {
        // SAFETY: build scripts are single-threaded.
        unsafe { std::env::set_var("PROTOC", path) };
    }
    println!("cargo:rerun-if-env-changed=PROTOC");
    println!("cargo:rerun-if-changed=proto/admin.proto");
    if let Err(e) = tonic_prost_build::compile_protos("proto/admin.proto") {
        panic!("compiling proto/admin.proto: {e}");
    }
}
