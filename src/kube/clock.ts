/**
 * Time as the runtime sees it. Injected everywhere a component waits or measures, so tests can
 * drive time exactly (see {@link FakeClock}) instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Runs `callback` after `delayMs` milliseconds; returns a handle for {@link Clock.clearTimer}. */
  setTimer(callback: () => void, delayMs: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

export interface TimerHandle {
  readonly id: number;
}

let nextTimerId = 1;

/**
 * Node turns any setTimeout delay above 2^31−1 ms (~24.8 days) into 1 ms, and so does
 * `AbortSignal.timeout`: a `--timeout 700h` would time every request out at once. Every wait in
 * the runtime goes through {@link realClock} or {@link timeoutSignal}, which chain longer waits.
 */
export const MAX_NODE_TIMER_MS = 2 ** 31 - 1;

/**
 * The wall clock backed by Node's timers. Timers are unref'd: a pending delay never keeps a
 * process alive on its own, so a library user's process is never held by a forgotten backoff.
 * Commands hold their process open themselves for as long as they run (the CLI's entry point
 * for every command, the operator for its lifetime): a wait inside a command never ends it.
 */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimer(callback, delayMs) {
    const handle: { id: number; timer?: NodeJS.Timeout } = { id: nextTimerId++ };
    const dueAt = Date.now() + Math.max(0, delayMs);
    const arm = (): void => {
      const remaining = dueAt - Date.now();
      handle.timer = setTimeout(remaining > MAX_NODE_TIMER_MS ? arm : callback, Math.min(Math.max(0, remaining), MAX_NODE_TIMER_MS));
      handle.timer.unref();
    };
    arm();
    return handle;
  },
  clearTimer(handle) {
    clearTimeout((handle as { timer?: NodeJS.Timeout }).timer);
  },
};

/**
 * An AbortSignal that aborts with a `TimeoutError` after `delayMs` milliseconds, like
 * `AbortSignal.timeout`, but right for any delay: longer than Node's timers can hold, the wait is
 * chained on {@link realClock} instead of firing after 1 ms. Infinite delays never abort.
 */
export function timeoutSignal(delayMs: number): AbortSignal {
  if (delayMs <= MAX_NODE_TIMER_MS) return AbortSignal.timeout(Math.max(0, delayMs));
  const controller = new AbortController();
  if (Number.isFinite(delayMs)) {
    realClock.setTimer(() => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), delayMs);
  }
  return controller.signal;
}

/** Resolves after `delayMs` on `clock`, or as soon as `signal` aborts. Never rejects. */
export function sleep(clock: Clock, delayMs: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = (): void => {
      clock.clearTimer(timer);
      resolve();
    };
    const timer = clock.setTimer(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, delayMs);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

interface PendingTimer {
  readonly handle: TimerHandle;
  readonly dueAt: number;
  readonly callback: () => void;
}

/** A clock that only moves when a test calls {@link FakeClock.advance}. Timers fire in due order. */
export class FakeClock implements Clock {
  private current: number;
  private pending: PendingTimer[] = [];

  constructor(startMs = 1_700_000_000_000) {
    this.current = startMs;
  }

  now(): number {
    return this.current;
  }

  setTimer(callback: () => void, delayMs: number): TimerHandle {
    const handle = { id: nextTimerId++ };
    this.pending.push({ handle, dueAt: this.current + Math.max(0, delayMs), callback });
    return handle;
  }

  clearTimer(handle: TimerHandle): void {
    this.pending = this.pending.filter((t) => t.handle.id !== handle.id);
  }

  /** Moves time forward by `deltaMs`, firing every timer that falls due, earliest first. */
  advance(deltaMs: number): void {
    const target = this.current + deltaMs;
    for (;;) {
      this.pending.sort((a, b) => a.dueAt - b.dueAt || a.handle.id - b.handle.id);
      const next = this.pending[0];
      if (!next || next.dueAt > target) break;
      this.pending.shift();
      this.current = next.dueAt;
      next.callback();
    }
    this.current = target;
  }

  /** Number of timers not yet fired. */
  get pendingTimers(): number {
    return this.pending.length;
  }
}
