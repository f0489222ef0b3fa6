//! `ceus-edge phantom`.

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`phantom` is not implemented yet")
}
