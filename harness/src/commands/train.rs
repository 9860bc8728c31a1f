//! `aegis-bench train`: trains the Aegis Q-network in the simulator (`scheduler::dqn`) and
//! writes the model that scx_aegis loads.
//!
//! The model file ([`ModelFile`]) is the scheduler's [`TrainedModel`] (training config and
//! seed, float and fixed-point networks, quantization error, rewards, learning curve,
//! evaluation) plus where and when it was made. `fixed_network` is the key the scheduler's
//! loader reads. Beside it, `STEM-learning-curve.png` and `.svg` draw the learning curve.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use comfy_table::Table;
use indicatif::{ProgressBar, ProgressStyle};
use plotters::coord::Shift;
use plotters::prelude::*;
use scheduler::dqn::{train as train_dqn, TrainConfig, TrainedModel};
use scheduler::sim::{Calibration, EevdfModel, SimConfig};

use crate::cli::TrainArgs;
use crate::files::write_atomically;
use crate::results::sim::ModelFile;
use crate::results::trial::now_rfc3339;
use crate::GIT_REV;

/// What to train, from the command line.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub config: TrainConfig,
    /// Where the model goes; the learning curve beside it.
    pub out: PathBuf,
    /// The command line that makes this model again.
    pub command: String,
}

impl TrainOptions {
    pub fn from_args(args: &TrainArgs) -> Result<Self> {
        // Before the notes about the calibration: a bad flag is one line.
        if args.episodes == Some(0) {
            return crate::error::input_error("--episodes must be at least 1");
        }
        let config = train_config(args)?;
        if config.episodes == 0 {
            return crate::error::input_error("--episodes must be at least 1");
        }
        Ok(Self {
            config,
            out: args.out.clone(),
            command: command_line(args),
        })
    }
}

/// The training configuration for these arguments: the machine comes from the calibration
/// (`--calibration`, else `results/calibration.json` if it exists, else the simulator's
/// defaults, said on stderr).
fn train_config(args: &TrainArgs) -> Result<TrainConfig> {
    let eevdf_model = EevdfModel::from(args.eevdf_model);
    let mut config = TrainConfig {
        seed: args.seed,
        eevdf_model,
        ..TrainConfig::default()
    };
    if args.cpus.is_empty() || args.cpus.contains(&0) {
        return crate::error::input_error("--cpus needs CPU counts of at least 1, e.g. 2,8");
    }
    config.cpu_choices = args.cpus.clone();
    let calibration = load_calibration(args.calibration.as_deref())?;
    if let Some(calibration) = &calibration {
        config.machine =
            SimConfig::from_calibration(calibration, "openat", 2, 4, 64 * 1024, config.episode_ns)
                .map_err(anyhow::Error::msg)?;
    }
    let tick_ns = calibration.as_ref().and_then(|c| eevdf_model.tick_ns(c));
    if let Some(tick_ns) = tick_ns {
        config.machine.tick_ns = tick_ns;
    } else if eevdf_model == EevdfModel::Linux {
        eprintln!(
            "note: the calibration does not record the kernel's tick (recalibrate with \
             `aegis-bench calibrate`): training at the simulator's {} ms tick",
            config.machine.tick_ns as f64 / 1e6
        );
    }
    if args.quick {
        config.episodes = 12;
        config.episode_ns = 100_000_000;
        config.validation_configs = 4;
        config.validation_points = 4;
        config.evaluation_configs = 4;
    }
    if let Some(episodes) = args.episodes {
        config.episodes = episodes;
    }
    Ok(config)
}

/// The calibration `path` names, else `results/calibration.json` if it exists, else none.
fn load_calibration(path: Option<&Path>) -> Result<Option<Calibration>> {
    let default_path = Path::new(scheduler::sim::calibration::DEFAULT_CALIBRATION_PATH);
    Ok(match path {
        Some(path) => Some(Calibration::load(path).map_err(|err| {
            anyhow!(
                "{err}; run `aegis-bench calibrate --out {}` first",
                path.display()
            )
        })?),
        None if default_path.exists() => {
            Some(Calibration::load(default_path).map_err(anyhow::Error::msg)?)
        }
        None => {
            eprintln!(
                "note: no {} (run `aegis-bench calibrate`): training on the simulator's \
                 uncalibrated default costs",
                default_path.display()
            );
            None
        }
    })
}

/// The `train` command line that makes the same model again.
fn command_line(args: &TrainArgs) -> String {
    let mut command = format!("aegis-bench train --seed {}", args.seed);
    if args.quick {
        command.push_str(" --quick");
    }
    if let Some(episodes) = args.episodes {
        command.push_str(&format!(" --episodes {episodes}"));
    }
    if let Some(path) = &args.calibration {
        command.push_str(&format!(" --calibration {}", path.display()));
    }
    command.push_str(&format!(
        " --cpus {}",
        args.cpus
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",")
    ));
    if let Some(model) = clap::ValueEnum::to_possible_value(&args.eevdf_model) {
        command.push_str(&format!(" --eevdf-model {}", model.get_name()));
    }
    command.push_str(&format!(" --out {}", args.out.display()));
    command
}

/// The learning-curve figures written beside `out`: `STEM-learning-curve.{png,svg}`.
pub fn figure_paths(out: &Path) -> (PathBuf, PathBuf) {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let base = out.with_file_name(format!("{stem}-learning-curve"));
    (base.with_extension("png"), base.with_extension("svg"))
}

/// `aegis-bench train`: trains, writes the model and its learning curve, prints a summary.
pub fn train(args: &TrainArgs) -> Result<ModelFile> {
    let options = TrainOptions::from_args(args)?;
    let started = Instant::now();
    let bar = ProgressBar::new(options.config.episodes as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "train [{elapsed_precise}] {bar:30} {pos}/{len} episodes, ETA {eta} {msg}",
        )
        .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(500));
    let model = train_dqn(&options.config, |episode, reward| {
        bar.set_position(episode as u64 + 1);
        bar.set_message(format!("(reward {reward:.3}/window)"));
    });
    bar.finish_and_clear();
    let file = ModelFile {
        model,
        git_rev: GIT_REV.to_string(),
        created_at: now_rfc3339(),
        train_seconds: started.elapsed().as_secs_f64(),
        command: options.command,
    };
    let mut json = serde_json::to_vec_pretty(&file).context("serializing the model")?;
    json.push(b'\n');
    write_atomically(&options.out, &json)?;
    let (png, svg) = figure_paths(&options.out);
    draw_learning_curve(&file.model, &png, &svg)?;
    print_summary(&file, &options.out, &png, &svg);
    Ok(file)
}

fn print_summary(file: &ModelFile, out: &Path, png: &Path, svg: &Path) {
    let model = &file.model;
    let mut table = Table::new();
    table.set_header(["policy", "loss %", "ordinary tasks' CPU vs EEVDF"]);
    for score in &model.evaluation {
        table.add_row([
            score.policy.clone(),
            format!("{:.2}", score.loss_pct),
            format!("{:.3}", score.ordinary_cpu_vs_eevdf),
        ]);
    }
    crate::out!("{table}");
    let q = &model.quantization;
    crate::out!(
        "quantization: fixed-point greedy action agrees with the float network on {:.1} % of \
         {} random states, mean |q error| {:.4}",
        q.argmax_agreement * 100.0,
        q.states_compared,
        q.mean_abs_q_error
    );
    if let (Some(first), Some(last)) = (model.learning_curve.first(), model.learning_curve.last()) {
        crate::out!(
            "learning curve (greedy, validation): {:.3} at episode {} -> {:.3} at episode {}; \
             Aegis without the network: {:.3}",
            first.1,
            first.0,
            last.1,
            last.0,
            model.baseline_reward
        );
    }
    crate::out!(
        "wrote {}, {} and {} in {:.0} s",
        out.display(),
        png.display(),
        svg.display(),
        file.train_seconds
    );
}

/// Draws the learning curve as PNG and SVG.
pub fn draw_learning_curve(model: &TrainedModel, png: &Path, svg: &Path) -> Result<()> {
    const SIZE: (u32, u32) = (900, 560);
    draw(model, BitMapBackend::new(png, SIZE).into_drawing_area())
        .with_context(|| format!("drawing {}", png.display()))?;
    draw(model, SVGBackend::new(svg, SIZE).into_drawing_area())
        .with_context(|| format!("drawing {}", svg.display()))?;
    Ok(())
}

/// Moving average over the last `width` points.
fn smoothed(values: &[f64], width: usize) -> Vec<f64> {
    (0..values.len())
        .map(|i| {
            let window = &values[i.saturating_sub(width - 1)..=i];
            window.iter().sum::<f64>() / window.len() as f64
        })
        .collect()
}

fn draw<DB: DrawingBackend>(model: &TrainedModel, root: DrawingArea<DB, Shift>) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e}");
    root.fill(&WHITE).map_err(err)?;
    let training = smoothed(&model.training_rewards, 10);
    let curve: Vec<(f64, f64)> = model
        .learning_curve
        .iter()
        .map(|&(episode, reward)| (episode as f64, reward))
        .collect();
    let all = training
        .iter()
        .copied()
        .chain(curve.iter().map(|p| p.1))
        .chain([model.baseline_reward]);
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let margin = ((hi - lo) * 0.08).max(0.01);
    let episodes = model.config.episodes.max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Aegis DQN learning curve (seed {}, {} episodes)",
                model.config.seed, model.config.episodes
            ),
            ("sans-serif", 22),
        )
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..episodes, (lo - margin)..(hi + margin))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("training episode (one simulated attack each)")
        .y_desc("mean reward per 10 ms window (higher is better)")
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(err)?;
    let grey = RGBColor(150, 150, 150);
    chart
        .draw_series(LineSeries::new(
            training.iter().enumerate().map(|(i, r)| (i as f64, *r)),
            grey.stroke_width(1),
        ))
        .map_err(err)?
        .label("training episodes, exploring (moving mean of 10)")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], grey));
    chart
        .draw_series(LineSeries::new(
            [0.0, episodes].map(|x| (x, model.baseline_reward)),
            RED.stroke_width(2),
        ))
        .map_err(err)?
        .label("Aegis without the network, validation")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(curve.clone(), BLUE.stroke_width(3)))
        .map_err(err)?
        .label(format!(
            "greedy policy, validation ({} fixed configurations)",
            model.config.validation_configs
        ))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(3)));
    chart
        .draw_series(curve.iter().map(|p| Circle::new(*p, 4, BLUE.filled())))
        .map_err(err)?;
    crate::figures::draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_go_beside_the_model() {
        let (png, svg) = figure_paths(Path::new("scheduler/models/aegis.json"));
        assert_eq!(png, Path::new("scheduler/models/aegis-learning-curve.png"));
        assert_eq!(svg, Path::new("scheduler/models/aegis-learning-curve.svg"));
    }

    #[test]
    fn moving_mean() {
        assert_eq!(smoothed(&[1.0, 3.0, 5.0], 2), vec![1.0, 2.0, 4.0]);
    }
}
