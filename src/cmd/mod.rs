//! One module per subcommand: each has its clap `Args` and a `run` function.

/// Writes a line to stdout and returns the I/O error, so a closed pipe ends the command
/// quietly instead of panicking as `println!` does.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?;
    }};
}

/// [`outln!`] without the newline.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)?;
    }};
}

mod analyze;
mod chart;
mod clinical;
mod demo;
mod devices;
mod evaluate;
mod extract;
mod infer;
mod inspect;
mod models;
mod phantom;
mod report;
mod run;
mod tic;
mod train;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// Show what a DICOM, Y4M or PNG-folder input contains.
    Inspect(inspect::Args),
    /// Compute the time-intensity curve, the bolus fit and the peak-enhancement frame.
    Tic(tic::Args),
    /// Write a synthetic CEUS exam with its ground truth.
    Phantom(phantom::Args),
    /// Run the DenseNet-201 feature extractor on a tensor or an image.
    Infer(infer::Args),
    /// Analyse one recorded exam: TIC, peak frame, deep features, risk and overlay.
    Analyze(analyze::Args),
    /// Analyse a generated phantom exam with the bundled demo model and signature.
    Demo(demo::Args),
    /// Extract the deep features of every exam of a cohort table into a CSV for train.
    Extract(extract::Args),
    /// Fit a deep-radiomics signature (feature selection, LASSO, clinical and integrated
    /// models) on a cohort table.
    Train(Box<train::Args>),
    /// Evaluate a signature or precomputed scores: AUC with DeLong CI, Youden cut-off,
    /// calibration, decision curve and DeLong comparisons.
    Evaluate(Box<evaluate::Args>),
    /// List the V4L2 capture devices with their formats, frame sizes and frame rates.
    Devices(devices::Args),
    /// Run the live pipeline: capture, peak detection, inference and the overlay.
    Run(Box<run::Args>),
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Inspect(args) => inspect::run(args),
        Command::Tic(args) => tic::run(args),
        Command::Phantom(args) => phantom::run(args),
        Command::Infer(args) => infer::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Extract(args) => extract::run(args),
        Command::Train(args) => train::run(*args),
        Command::Evaluate(args) => evaluate::run(*args),
        Command::Devices(args) => devices::run(args),
        Command::Run(args) => run::run(*args),
    }
}

/// Rejects an output path that is the input itself (a file, or the folder of a PNG-folder
/// input), so writing results never destroys the recording they came from.
pub fn reject_input_as_output(
    output: &std::path::Path,
    input: &std::path::Path,
) -> anyhow::Result<()> {
    let (Ok(output), Ok(input)) = (output.canonicalize(), input.canonicalize()) else {
        return Ok(());
    };
    if output == input {
        anyhow::bail!(
            "the output {} is the input: choose another output path",
            output.display()
        );
    }
    Ok(())
}
