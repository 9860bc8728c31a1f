//! `aegis-bench attack`: the flags converted once into [`AttackOptions`], then the trials run
//! on this host ([`run_attack`]) or, with `--vm`, the same attack in a guest
//! ([`vm::attack`](crate::vm::attack)).

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{AttackArgs, Cli};
use crate::collector::CollectorKind;
use crate::error::InputError;
use crate::run::plan::{split_cmd, split_scx_args};
use crate::run::{run_attack, workload, AttackOptions, Plan};
use crate::size::parse_ring_size;
use crate::vm;

/// `aegis-bench attack`. Returns the exit status (the guest command's, with `--vm`).
pub fn run(args: &AttackArgs) -> Result<i32> {
    args.guest.refuse_without_vm(args.vm)?;
    let options = options(args)?;
    if args.vm {
        return vm::attack::run(&options, &args.guest, &attack_command(), &attack_argv());
    }
    refuse_boots_on_host(options.boots, options.boot)?;
    run_attack(&Plan::new(&options)?)?;
    Ok(0)
}

/// The typed options `args` give: sizes in bytes, collectors and workloads by kind, the
/// programs' arguments split like a shell would. Validation is [`Plan::new`]'s.
pub fn options(args: &AttackArgs) -> Result<AttackOptions, InputError> {
    Ok(AttackOptions {
        flood: args.flood,
        threads: args.threads.clone(),
        duration_s: args.duration,
        count: args.count,
        rate: args.rate,
        evade: args.evade,
        cmd: args.cmd.as_deref().map(split_cmd).transpose()?,
        ring_sizes: args
            .ring_size
            .iter()
            .map(|text| parse_ring_size(text))
            .collect::<Result<_, _>>()?,
        collectors: args
            .collector
            .iter()
            .map(|name| CollectorKind::parse(name))
            .collect::<Result<_, _>>()?,
        schedulers: args.scheduler.clone(),
        scx_args: match &args.scx_args {
            Some(text) => split_scx_args(text)?,
            None => Vec::new(),
        },
        workloads: workload::parse_names(&args.workload)?,
        watch_run_delay: args.watch_run_delay,
        trace_scope: args.trace_scope,
        repetitions: args.repetitions,
        boots: args.boots,
        boot: args.boot,
        audit_backlog_limits: args.audit_backlog_limit.clone(),
        audit_backlog_wait_times_ms: args.audit_backlog_wait_time.clone(),
        eaudit_dir: args.eaudit_dir.clone(),
        json: args.json.clone(),
        csv: args.csv.clone(),
        keep_logs: args.keep_logs.clone(),
    })
}

/// Several boots need guests: this machine cannot reboot between them.
pub fn refuse_boots_on_host(boots: u32, boot: Option<u32>) -> Result<(), InputError> {
    if boots > 1 && boot.is_none() {
        return Err(InputError(format!(
            "{boots} boots need --vm (each boot is a fresh guest; this machine cannot reboot \
             between them); on bare metal run one boot per runner with --shard and join them \
             with `aegis-bench merge`"
        )));
    }
    Ok(())
}

/// clap's definition of `attack`, which the guest's command line is rewritten by.
fn attack_command() -> clap::Command {
    Cli::command()
        .find_subcommand("attack")
        .expect("the CLI has an attack subcommand")
        .clone()
}

/// What followed `attack` on the command line, for the guest's copy of it.
fn attack_argv() -> Vec<String> {
    std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .skip_while(|arg| arg != "attack")
        .skip(1)
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::vm::attack::guest_command_line;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    fn parse(args: &[&str]) -> AttackArgs {
        let argv = ["aegis-bench", "attack"].iter().chain(args);
        match Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Attack(args) => args,
            other => panic!("not an attack: {other:?}"),
        }
    }

    #[test]
    fn no_flags_are_the_default_options() {
        assert_eq!(options(&parse(&[])).unwrap(), AttackOptions::default());
    }

    #[test]
    fn flags_become_typed_options() {
        let options = options(&parse(&[
            "--ring-size",
            "64KiB,1MiB",
            "--collector",
            "builtin,auditd",
            "--cmd",
            "stress-ng --cpu '2'",
            "--scx-args",
            "--no-model --action 3",
            "--workload",
            "hackbench,hackbench",
        ]))
        .unwrap();
        assert_eq!(options.ring_sizes, [64 << 10, 1 << 20]);
        assert_eq!(
            options.collectors,
            [CollectorKind::Builtin, CollectorKind::Auditd]
        );
        assert_eq!(options.cmd.unwrap(), ["stress-ng", "--cpu", "2"]);
        assert_eq!(options.scx_args, ["--no-model", "--action", "3"]);
        assert_eq!(options.workloads, ["hackbench"]);
    }

    #[test]
    fn help_lists_every_workload() {
        let attack = attack_command();
        let flag = attack
            .get_arguments()
            .find(|a| a.get_long() == Some("workload"))
            .unwrap();
        let help = flag.get_help().unwrap().to_string();
        for name in workloads::names() {
            assert!(help.contains(name), "--workload help lacks {name}: {help}");
        }
    }

    #[test]
    fn rewrites_outputs_and_drops_guest_flags() {
        let line = guest_command_line(
            &attack_command(),
            &strings(&[
                "--flood",
                "openat",
                "--vm",
                "--json",
                "results/run1/trials.json",
                "--csv=out.csv",
                "--vm-kernel",
                "cfs",
                "--cpus=4",
                "--mem",
                "1GiB",
                "--offline",
                "--keep-logs",
                "/data/logs",
                "--scheduler",
                "cfs",
                "--cmd",
                "stress-ng --cpu 2",
            ]),
        )
        .unwrap();
        assert_eq!(
            line,
            strings(&[
                "attack",
                "--flood",
                "openat",
                "--json",
                "/aegis-out/json/trials.json",
                "--csv",
                "/aegis-out/csv/out.csv",
                "--keep-logs",
                "/aegis-out/logs",
                "--scheduler",
                "cfs",
                "--cmd",
                "stress-ng --cpu 2",
            ])
        );
    }

    #[test]
    fn a_value_that_looks_like_a_flag_is_kept() {
        let line =
            guest_command_line(&attack_command(), &strings(&["--cmd", "--vm", "--vm"])).unwrap();
        assert_eq!(line, strings(&["attack", "--cmd", "--vm"]));
    }
}
