//! The inference worker: a thread that owns the feature extractor and the signature, and
//! turns the peak frame into a result while the frame path goes on.
//!
//! Jobs go through a rendezvous channel, so [`InferenceWorker::submit`] hands a job over
//! only when the worker is idle and otherwise returns it at once: the frame path never
//! waits for inference.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::events::ResultEvent;
use super::session::{Inference, InferenceJob, InferenceOutcome, LiveResult};
use crate::analysis::{score, AnalysisError, Scorer};
use crate::extractor::Extractor;
use crate::heatmap;
use crate::preprocess::{self, SIZE};
use crate::signature::Signature;

/// The worker thread and its channels.
pub struct InferenceWorker {
    jobs: Option<SyncSender<Box<InferenceJob>>>,
    outcomes: Receiver<InferenceOutcome>,
    thread: Option<JoinHandle<()>>,
}

impl InferenceWorker {
    /// Starts the worker thread with a loaded extractor and signature.
    ///
    /// # Errors
    /// The error of spawning the thread.
    pub fn spawn(extractor: Extractor, signature: Signature) -> std::io::Result<InferenceWorker> {
        let (jobs, job_receiver) = mpsc::sync_channel::<Box<InferenceJob>>(0);
        let (outcome_sender, outcomes) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("inference".to_string())
            .spawn(move || {
                for job in job_receiver {
                    let outcome = run_job(&extractor, &signature, job);
                    if outcome_sender.send(outcome).is_err() {
                        return;
                    }
                }
            })?;
        Ok(InferenceWorker {
            jobs: Some(jobs),
            outcomes,
            thread: Some(thread),
        })
    }
}

impl Inference for InferenceWorker {
    fn submit(&mut self, job: Box<InferenceJob>) -> Result<(), Box<InferenceJob>> {
        let Some(jobs) = &self.jobs else {
            return Err(job);
        };
        match jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => Err(job),
        }
    }

    fn poll(&mut self) -> Option<InferenceOutcome> {
        self.outcomes.try_recv().ok()
    }
}

impl Drop for InferenceWorker {
    /// Closes the job channel and waits for the thread, which ends after its current job.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("the inference thread panicked");
            }
        }
    }
}

/// Preprocesses the peak region, extracts the features and scores them.
fn run_job(
    extractor: &Extractor,
    signature: &Signature,
    job: Box<InferenceJob>,
) -> InferenceOutcome {
    let started = Instant::now();
    let generation = job.generation;
    let result = score_job(extractor, signature, &job, started).map_err(|error| {
        format!(
            "inference on frame {} of exam {} failed: {error}",
            job.frame, job.exam
        )
    });
    if let Ok(result) = &result {
        log::info!(
            "exam {} frame {}: probability {:.3} in {:.0} ms",
            job.exam,
            job.frame,
            result.event.probability,
            result.event.inference_ms
        );
    }
    InferenceOutcome { generation, result }
}

fn score_job(
    extractor: &Extractor,
    signature: &Signature,
    job: &InferenceJob,
    started: Instant,
) -> Result<LiveResult, AnalysisError> {
    let resize = signature.preprocessing.resize;
    let tensor = preprocess::preprocess(&job.crop, Some(job.roi_in_crop), resize)?;
    let features = extractor.run(&[1, 3, SIZE, SIZE], &tensor)?;
    let map = heatmap::rad_score_map(signature, &features.map)?;

    let clinical: &BTreeMap<String, f64> = &job.clinical;
    let scorer = Scorer {
        extractor,
        signature,
        clinical,
    };
    let mut warnings = Vec::new();
    let scores = score(&scorer, &features, &mut warnings)?;
    for warning in &warnings {
        log::info!("exam {}: {warning}", job.exam);
    }

    let event = ResultEvent {
        exam: job.exam,
        frame: job.frame,
        time_s: job.time_s,
        roi: job.roi.to_array(),
        probability: scores.probability,
        risk: scores.risk,
        cutoff: scores.cutoff,
        rad_score: scores.rad_score,
        imaging_probability: scores.imaging_probability,
        clinical_score: scores.clinical_score,
        integrated_available: scores.integrated_available,
        missing_clinical: scores.missing_clinical,
        reliable: job.quality.reliable,
        reasons: job.quality.reasons.clone(),
        inference_ms: duration_ms(started.elapsed()),
        demo: extractor.is_demo() || signature.demo,
    };
    Ok(LiveResult {
        event,
        heatmap: map.cells,
    })
}

fn duration_ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
