//! How evenly a group of equal-weight tasks shared the CPU: Jain's fairness index over the CPU
//! time each task got during a trial.
//!
//! Only a group's *leaf* tasks weigh equally. A flood worker's main thread only spawns and
//! joins its flood threads, and stress-ng's parent process (and the helper that started it)
//! only waits for its workers: counting them beside the tasks doing the work would read an idle
//! waiter as starvation. So a process's main thread is left out when the process has other
//! threads in the group, a process that is the parent of another process in the group is left
//! out altogether, and so is every task that got no CPU at all.

/// The CPU time one task (thread) got during the trial, with what places it in its tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskCpu {
    pub tid: u32,
    /// Its process (thread group).
    pub tgid: u32,
    /// Its process's parent process.
    pub ppid: u32,
    pub cpu_ns: u64,
}

/// Jain's fairness index, (sum x)^2 / (n * sum x^2): 1 when every value is equal, 1/n when one
/// value is everything. `None` for no values or all zero.
pub fn jain_index(values: &[f64]) -> Option<f64> {
    let sum: f64 = values.iter().sum();
    let sum_of_squares: f64 = values.iter().map(|x| x * x).sum();
    if values.is_empty() || sum_of_squares <= 0.0 {
        return None;
    }
    Some(sum * sum / (values.len() as f64 * sum_of_squares))
}

/// The group's equal-weight tasks (see the module docs), in the order given.
pub fn leaf_tasks(tasks: &[TaskCpu]) -> Vec<TaskCpu> {
    let is_parent_of_another = |tgid: u32| {
        tasks
            .iter()
            .any(|other| other.ppid == tgid && other.tgid != tgid)
    };
    let has_other_threads = |tgid: u32| {
        tasks
            .iter()
            .any(|other| other.tgid == tgid && other.tid != tgid)
    };
    tasks
        .iter()
        .filter(|task| task.cpu_ns > 0)
        .filter(|task| !is_parent_of_another(task.tgid))
        .filter(|task| !(task.tid == task.tgid && has_other_threads(task.tgid)))
        .copied()
        .collect()
}

/// Jain's index over the group's leaf tasks, and how many there were.
pub fn group_fairness(tasks: &[TaskCpu]) -> Option<(f64, u32)> {
    let leaves = leaf_tasks(tasks);
    let cpu: Vec<f64> = leaves.iter().map(|task| task.cpu_ns as f64).collect();
    jain_index(&cpu).map(|jain| (jain, leaves.len() as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(tid: u32, tgid: u32, ppid: u32, cpu_ms: u64) -> TaskCpu {
        TaskCpu {
            tid,
            tgid,
            ppid,
            cpu_ns: cpu_ms * 1_000_000,
        }
    }

    fn tids(tasks: &[TaskCpu]) -> Vec<u32> {
        tasks.iter().map(|task| task.tid).collect()
    }

    /// Asserts which of the tree's tasks are its leaves, and Jain's index over them.
    fn assert_leaves_and_jain(tree: &[TaskCpu], leaves: &[u32], expected: f64) {
        assert_eq!(tids(&leaf_tasks(tree)), leaves);
        let (jain, tasks) = group_fairness(tree).unwrap();
        assert_eq!(tasks as usize, leaves.len());
        assert!((jain - expected).abs() < 1e-12, "{jain} vs {expected}");
    }

    #[test]
    fn equal_shares_are_perfectly_fair() {
        assert_eq!(jain_index(&[3.0, 3.0, 3.0, 3.0]), Some(1.0));
        assert_eq!(jain_index(&[7.5]), Some(1.0));
    }

    #[test]
    fn one_task_taking_everything_scores_one_over_n() {
        let jain = jain_index(&[0.0, 0.0, 9.0, 0.0, 0.0]).unwrap();
        assert!((jain - 0.2).abs() < 1e-12, "{jain}");
        // Two of four equal, two idle: 1/2.
        let jain = jain_index(&[5.0, 5.0, 0.0, 0.0]).unwrap();
        assert!((jain - 0.5).abs() < 1e-12, "{jain}");
    }

    #[test]
    fn nothing_to_judge_is_none() {
        assert_eq!(jain_index(&[]), None);
        assert_eq!(jain_index(&[0.0, 0.0]), None);
        assert_eq!(group_fairness(&[]), None);
    }

    #[test]
    fn stress_ng_counts_its_workers_only() {
        // workload-worker (100, started by the harness 1) runs stress-ng (200), which forks
        // two cpu workers (201, 202): the helper and stress-ng's parent only wait.
        let tree = [
            task(100, 100, 1, 12),
            task(200, 200, 100, 30),
            task(201, 201, 200, 1_900),
            task(202, 202, 200, 1_700),
        ];
        let expected = 3_600f64.powi(2) / (2.0 * (1_900f64.powi(2) + 1_700f64.powi(2)));
        assert_leaves_and_jain(&tree, &[201, 202], expected);
    }

    #[test]
    fn a_flood_counts_its_threads_not_the_main_thread() {
        // The worker process 300 spawned flood threads 301..=303 and joins them; 303 never ran
        // (it got no CPU) and is no task to be fair to.
        let flood = [
            task(300, 300, 1, 4),
            task(301, 300, 1, 1_000),
            task(302, 300, 1, 1_000),
            task(303, 300, 1, 0),
        ];
        assert_leaves_and_jain(&flood, &[301, 302], 1.0);
        // A single-threaded process is its own leaf.
        assert_eq!(tids(&leaf_tasks(&[task(400, 400, 1, 5)])), vec![400]);
    }

    #[test]
    fn a_command_producer_counts_the_program_not_the_worker_that_started_it() {
        // The worker (500) runs `--cmd` (600), a multi-threaded program.
        let tree = [
            task(500, 500, 1, 3),
            task(600, 600, 500, 2),
            task(601, 600, 500, 800),
            task(602, 600, 500, 200),
        ];
        assert_leaves_and_jain(&tree, &[601, 602], 1_000f64.powi(2) / (2.0 * 680_000.0));
    }
}
