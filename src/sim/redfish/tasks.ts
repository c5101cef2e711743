/**
 * Tasks of one simulated BMC (firmware updates): Running with a growing PercentComplete
 * for `durationMs`, then Completed, or Exception for an image that is meant to fail.
 * The state is derived from the clock; one timer per task runs the completion callback.
 * At most `max` tasks are kept, the oldest finished ones are forgotten first.
 */

export type TaskState = 'Running' | 'Completed' | 'Exception';

export interface SimTask {
  id: string;
  name: string;
  startedAt: number;
  durationMs: number;
  fails: boolean;
  messages: string[];
  /** redfish-task-monitor-204: the monitor has given its one 204 for the ended task */
  monitorEnded?: boolean;
  /** redfish-job-scheduled-until-reset: the host's boot count when the task started; a later boot applies the job */
  hostBootsAtStart?: number;
}

export interface TaskView {
  state: TaskState;
  percent: number;
  endedAt?: number;
}

export function taskView(task: SimTask, now: number): TaskView {
  const elapsed = now - task.startedAt;
  if (elapsed < task.durationMs) return { state: 'Running', percent: Math.floor((elapsed / task.durationMs) * 100) };
  const endedAt = task.startedAt + task.durationMs;
  return task.fails ? { state: 'Exception', percent: 50, endedAt } : { state: 'Completed', percent: 100, endedAt };
}

export class TaskStore {
  private readonly tasks = new Map<string, SimTask>();
  /** each running task's completion: its timer and its callback */
  private readonly pending = new Map<SimTask, { timer: NodeJS.Timeout; onDone: () => void }>();
  private next = 1;

  constructor(
    private readonly durationMs: number,
    private readonly max = 32,
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts a task (running `durationMs`, default the store's); `onDone` runs when it completes successfully. */
  start(name: string, messages: string[], fails: boolean, onDone: () => void, durationMs = this.durationMs): SimTask {
    const task: SimTask = { id: String(this.next++), name, startedAt: this.now(), durationMs, fails, messages };
    this.tasks.set(task.id, task);
    const timer = setTimeout(() => this.settle(task), durationMs);
    this.pending.set(task, { timer, onDone });
    this.trim();
    return task;
  }

  /**
   * The task as a client sees it now: a task whose time is up has had its effect (the firmware
   * recorded), even when its timer is late on a loaded machine, so a client that reads Completed
   * and then looks at the machine finds the change.
   */
  view(task: SimTask): TaskView {
    const view = taskView(task, this.now());
    if (view.state !== 'Running') this.settle(task);
    return view;
  }

  /** Runs a task's completion once, unless it failed. */
  private settle(task: SimTask): void {
    const p = this.pending.get(task);
    if (p === undefined) return;
    this.pending.delete(task);
    clearTimeout(p.timer);
    if (!task.fails) p.onDone();
  }

  get(id: string): SimTask | undefined {
    return this.tasks.get(id);
  }

  list(): SimTask[] {
    return [...this.tasks.values()];
  }

  /** Forgets every task and stops their timers (a BMC that restarts keeps its tasks in memory only). */
  forget(): void {
    this.stop();
    this.tasks.clear();
  }

  /** Stops the completion timers (server shutdown). */
  stop(): void {
    for (const { timer } of this.pending.values()) clearTimeout(timer);
    this.pending.clear();
  }

  private trim(): void {
    for (const task of this.tasks.values()) {
      if (this.tasks.size <= this.max) return;
      if (taskView(task, this.now()).state !== 'Running') this.tasks.delete(task.id);
    }
  }
}
