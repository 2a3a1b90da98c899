//! Print what a `validate` corpus or crash file means: the manifest text, the host facts and the
//! command line the structured target builds from its bytes.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example show_input -- fuzz/artifacts/validate/crash-...

fn main() {
    let path = std::env::args().nth(1).expect("usage: show_input FILE");
    let data = std::fs::read(&path).expect("readable file");
    let input = sandbox_fuzz::structured::from_bytes(&data).expect("enough bytes for an input");
    println!("# path: {}", input.path().display());
    println!("# facts: {:?}", input.facts);
    println!("# invocation: {:?}", input.invocation());
    print!("{}", input.text());
}
