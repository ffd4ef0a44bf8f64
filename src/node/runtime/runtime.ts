/**
 * The runtime: reconciles desired replica counts into model-server processes. It starts
 * missing replicas, restarts crashed ones with exponential backoff, and retires extra ones
 * (out of routing, drained, SIGTERM, SIGKILL). It knows nothing of the store or of HTTP.
 */
import { newId } from '../../shared/ids';
import type { ObservedReplica } from '../../store/store';
import type { SecretResolver } from '../../secrets/secret-values';
import { DEFAULT_REPLICA_TIMINGS, ReplicaProcess, type ReloadOutcome, type ReplicaSpec, type ReplicaTimings } from './replica-process';
import { lineLogger, processLogger } from '../../logging/logger';

/** How many replicas one deployment should have, and how to start them. */
export interface DesiredReplicas {
  spec: ReplicaSpec;
  replicas: number;
}

/** Runtime tunables; tests shorten them. */
export interface RuntimeOptions {
  nodeId: string;
  timings?: ReplicaTimings;
  /** First restart delay after a crash; doubles per crash up to `maxBackoffMs`. */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** A replica that ran this long before crashing starts its backoff afresh. */
  stableAfterMs?: number;
  /** How long a retiring replica may take to finish its in-flight requests. */
  drainMs?: number;
  /** Called after any replica changes state. */
  onChange?: () => void;
  log?: (line: string) => void;
  /** Reads the values of the secrets a spec declares, each time a replica starts or reloads. */
  resolveSecrets?: SecretResolver;
  /** The most replica processes this runtime runs at once, draining ones included (GANTRY_MAX_REPLICAS); unlimited when not given. */
  maxReplicas?: number;
}

/** A deployment that has fewer replicas than it wants because the host replica cap is reached. */
export interface ReplicaShortfall {
  /** The replicas it wants. */
  wanted: number;
  /** The replicas it has (running, starting or restarting). */
  running: number;
  /** The cap that holds the rest back. */
  cap: number;
}

interface Slot {
  id: string;
  /** The spec the process runs: the last revision it started with or reloaded successfully. */
  spec: ReplicaSpec;
  /** A reload in progress, to this revision. */
  reloading: number | undefined;
  /** The last failed reload; that revision is not tried again. */
  reloadError: { revision: number; error: string } | undefined;
  process: ReplicaProcess | undefined;
  /** Reading the spec's secrets before starting a process. */
  launching: boolean;
  restarts: number;
  lastExit: string | undefined;
  lastError: string | undefined;
  restartTimer: NodeJS.Timeout | undefined;
  retiring: boolean;
  since: Date;
}

/** The replica processes of one node. */
export class Runtime {
  private readonly slots = new Map<string, Slot>();
  private readonly timings: ReplicaTimings;
  private readonly baseBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly stableAfterMs: number;
  private readonly drainMs: number;
  private readonly log: (line: string) => void;
  private readonly maxReplicas: number;
  private stopped = false;
  /** The last desired state, reconciled again when a retired replica frees room under the cap. */
  private lastDesired: DesiredReplicas[] = [];
  /** Deployment id → what the cap holds back, as of the last reconcile. */
  private shortfalls = new Map<string, ReplicaShortfall>();

  constructor(private readonly options: RuntimeOptions) {
    this.timings = options.timings ?? DEFAULT_REPLICA_TIMINGS;
    this.baseBackoffMs = options.baseBackoffMs ?? 1000;
    this.maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.stableAfterMs = options.stableAfterMs ?? 60_000;
    this.drainMs = options.drainMs ?? 30_000;
    this.log = options.log ?? lineLogger(processLogger());
    this.maxReplicas = options.maxReplicas ?? Number.POSITIVE_INFINITY;
  }

  /** Brings the replicas of every deployment to the desired counts; deployments absent get none. */
  reconcile(desired: DesiredReplicas[]): void {
    if (this.stopped) return;
    this.lastDesired = desired;
    const shortfalls = new Map<string, ReplicaShortfall>();
    const wanted = new Map(desired.map((d) => [d.spec.deploymentId, d]));
    for (const slot of this.slots.values()) {
      if (!slot.retiring && !wanted.has(slot.spec.deploymentId)) this.retireInBackground(slot);
    }
    for (const { spec, replicas } of desired) {
      for (const slot of this.slots.values()) {
        if (slot.spec.deploymentId === spec.deploymentId && !slot.retiring) this.followSpec(slot, spec);
      }
      const live = [...this.slots.values()].filter((slot) => slot.spec.deploymentId === spec.deploymentId && !slot.retiring);
      // Every slot is a process (or about to be one again), draining ones too: the cap counts them all.
      const room = Math.max(0, this.maxReplicas - this.slots.size);
      const starting = Math.min(Math.max(0, replicas - live.length), room);
      for (let i = 0; i < starting; i++) this.startSlot(spec);
      if (live.length + starting < replicas) shortfalls.set(spec.deploymentId, { wanted: replicas, running: live.length + starting, cap: this.maxReplicas });
      if (live.length > replicas) {
        // Retire the least useful first: not ready before ready, then the newest.
        const ranked = [...live].sort((a, b) => rank(a) - rank(b) || b.since.getTime() - a.since.getTime());
        for (const slot of ranked.slice(0, live.length - replicas)) this.retireInBackground(slot);
      }
    }
    this.reportShortfalls(shortfalls);
  }

  /** Logs a change in what the cap holds back, and tells the owner. */
  private reportShortfalls(shortfalls: Map<string, ReplicaShortfall>): void {
    const changed = JSON.stringify([...shortfalls]) !== JSON.stringify([...this.shortfalls]);
    this.shortfalls = shortfalls;
    if (!changed) return;
    for (const [deploymentId, shortfall] of shortfalls) this.log(`deployment ${deploymentId}: ${describeShortfall(shortfall)}`);
    this.options.onChange?.();
  }

  /** The deployments the host replica cap holds back, and by how much. */
  replicaShortfalls(): ReadonlyMap<string, ReplicaShortfall> {
    return this.shortfalls;
  }

  /**
   * Brings a slot to a newer spec: a new Python environment means a new process (not
   * zero-downtime); a newer code revision of a development replica is reloaded in place.
   */
  private followSpec(slot: Slot, spec: ReplicaSpec): void {
    if (slot.spec.python !== spec.python) {
      this.log(`replica ${slot.id}: its Python environment changed; replacing it`);
      this.retireInBackground(slot);
      return;
    }
    if (spec.revision < slot.spec.revision && slot.reloading === undefined) {
      // The record went back to an older revision (the newer one failed to load): replace the
      // replica so that it runs the revision the record names.
      this.log(`replica ${slot.id}: back to revision ${spec.revision}; replacing it`);
      this.retireInBackground(slot);
      return;
    }
    if (spec.revision <= slot.spec.revision || slot.reloading !== undefined || slot.reloadError?.revision === spec.revision) return;
    const process = slot.process;
    if (!process || process.phase === 'EXITED') {
      // Not running (waiting to restart): it restarts straight into the new revision, afresh.
      slot.spec = spec;
      slot.lastError = undefined;
      slot.restarts = 0;
      return;
    }
    if (process.phase !== 'READY' || spec.kind !== 'development') return;
    slot.reloading = spec.revision;
    this.options.onChange?.();
    this.secretsOf(spec)
      .then(
        (secrets) => process.reload(spec, secrets),
        (error): ReloadOutcome => ({ ok: false, error: (error as Error).message }),
      )
      .then((outcome) => {
        slot.reloading = undefined;
        if (outcome.ok) {
          slot.spec = spec;
          slot.reloadError = undefined;
        } else {
          slot.reloadError = { revision: spec.revision, error: outcome.error };
        }
        this.options.onChange?.();
      })
      .catch((error) => this.log(`replica ${slot.id}: the reload to revision ${spec.revision} failed: ${(error as Error).message}`));
  }

  /** The replicas of a deployment the gateway may send requests to. */
  routableReplicas(deploymentId: string): ReplicaProcess[] {
    const result: ReplicaProcess[] = [];
    for (const slot of this.slots.values()) {
      if (slot.spec.deploymentId === deploymentId && !slot.retiring && slot.process?.routable) result.push(slot.process);
    }
    return result;
  }

  /** Every routable replica, by deployment id (what the node pushes into its gateway). */
  routableReplicasByDeployment(): Map<string, ReplicaProcess[]> {
    const result = new Map<string, ReplicaProcess[]>();
    for (const slot of this.slots.values()) {
      if (slot.retiring || !slot.process?.routable) continue;
      const list = result.get(slot.spec.deploymentId);
      if (list) list.push(slot.process);
      else result.set(slot.spec.deploymentId, [slot.process]);
    }
    return result;
  }

  /** Records the requests the gateway has in flight on each replica (absent: none), which a draining replica waits for. */
  recordRequestsInFlight(counts: Readonly<Record<string, number>>): void {
    for (const slot of this.slots.values()) if (slot.process) slot.process.inFlight = counts[slot.process.id] ?? 0;
  }

  /** Whether any replica of the deployment is still here: starting, ready, restarting or draining. */
  hasReplicas(deploymentId: string): boolean {
    return [...this.slots.values()].some((slot) => slot.spec.deploymentId === deploymentId);
  }

  /** The interpreters of every replica here (starting, ready, restarting or draining): their environments are in use. */
  pythonsInUse(): Set<string> {
    return new Set([...this.slots.values()].map((slot) => slot.spec.python));
  }

  /** What this node observes of its replicas, for the store. */
  snapshot(): ObservedReplica[] {
    const at = new Date().toISOString();
    return [...this.slots.values()].map((slot) => {
      const process = slot.process;
      const state: ObservedReplica['state'] = slot.retiring ? 'DRAINING' : process ? observedState(process) : slot.launching ? 'STARTING' : 'EXITED';
      return {
        id: slot.id,
        deployment_id: slot.spec.deploymentId,
        node_id: this.options.nodeId,
        state,
        pid: process && process.phase !== 'EXITED' ? (process.pid ?? null) : null,
        port: process?.port ?? null,
        restarts: slot.restarts,
        last_exit: slot.lastExit ?? null,
        last_error: slot.lastError ?? null,
        revision: slot.spec.revision,
        reload_error: slot.reloadError ?? null,
        started_at: (process?.startedAt ?? slot.since).toISOString(),
        ready_at: process?.readyAt?.toISOString() ?? null,
        updated_at: at,
      };
    });
  }

  /** Stops every replica (drained, then terminated) and refuses further reconciles. */
  async stopAll(drainMs = this.drainMs): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.slots.values()].map((slot) => this.retire(slot, drainMs)));
  }

  private startSlot(spec: ReplicaSpec): void {
    const slot: Slot = {
      id: `${spec.deploymentId}-${newId(5)}`,
      spec,
      reloading: undefined,
      reloadError: undefined,
      process: undefined,
      launching: false,
      restarts: 0,
      lastExit: undefined,
      lastError: undefined,
      restartTimer: undefined,
      retiring: false,
      since: new Date(),
    };
    this.slots.set(slot.id, slot);
    this.launch(slot);
  }

  /** The values of the secrets a spec declares (none without a resolver when it declares none). */
  private async secretsOf(spec: ReplicaSpec): Promise<Record<string, string>> {
    const names = spec.secretNames ?? [];
    if (names.length === 0) return {};
    if (!this.options.resolveSecrets) throw new Error('this node cannot read secrets (no secret store)');
    return this.options.resolveSecrets(names);
  }

  /** Reads the slot's secrets, then starts its process; a secret that is not set is a failed start, retried with backoff. */
  private launch(slot: Slot): void {
    slot.restartTimer = undefined;
    if (slot.retiring || this.stopped) return;
    const spec = slot.spec;
    if ((spec.secretNames ?? []).length === 0) {
      this.spawn(slot, {});
      return;
    }
    slot.launching = true;
    this.secretsOf(spec).then(
      (secrets) => {
        slot.launching = false;
        if (slot.retiring || this.stopped) return;
        if (slot.spec !== spec) return this.launch(slot); // the spec moved on while its secrets were read
        this.spawn(slot, secrets);
      },
      (error) => {
        slot.launching = false;
        if (slot.retiring || this.stopped) return;
        slot.restarts++;
        slot.lastExit = 'not started';
        slot.lastError = (error as Error).message;
        this.scheduleRestart(slot);
        this.options.onChange?.();
      },
    );
  }

  private spawn(slot: Slot, secrets: Record<string, string>): void {
    try {
      slot.process = new ReplicaProcess(slot.id, slot.spec, this.timings, (process) => this.onProcessChange(slot, process), this.log, secrets);
    } catch (error) {
      // Not started at all (spawn refused synchronously): tried again like a process that exited.
      slot.process = undefined;
      slot.restarts++;
      slot.lastExit = `could not start: ${(error as Error).message}`;
      slot.lastError = slot.lastExit;
      this.scheduleRestart(slot);
    }
    this.options.onChange?.();
  }

  private onProcessChange(slot: Slot, process: ReplicaProcess): void {
    if (slot.process !== process) return;
    if (process.phase === 'READY') slot.lastError = undefined;
    if (process.reportedError) slot.lastError = process.reportedError;
    if (process.phase === 'EXITED' && !slot.retiring && !this.stopped) {
      const ranFor = Date.now() - process.startedAt.getTime();
      slot.restarts = process.readyAt && ranFor > this.stableAfterMs ? 1 : slot.restarts + 1;
      slot.lastExit = process.exit?.description;
      if (process.exit?.error) slot.lastError = process.exit.error;
      this.scheduleRestart(slot);
    }
    this.options.onChange?.();
  }

  /** Starts the slot's process again after `base · 2^(restarts−1)`, capped. */
  private scheduleRestart(slot: Slot): void {
    const backoff = Math.min(this.maxBackoffMs, this.baseBackoffMs * 2 ** (slot.restarts - 1));
    this.log(`replica ${slot.id} ended (${slot.lastExit}); restart ${slot.restarts} in ${backoff} ms`);
    slot.restartTimer = setTimeout(() => this.launch(slot), backoff);
  }

  /** Retires a slot without waiting for it; a failure is logged. */
  private retireInBackground(slot: Slot): void {
    this.retire(slot).catch((error) => this.log(`replica ${slot.id}: retiring it failed: ${(error as Error).message}`));
  }

  private async retire(slot: Slot, drainMs = this.drainMs): Promise<void> {
    if (slot.restartTimer) clearTimeout(slot.restartTimer);
    slot.restartTimer = undefined;
    const first = !slot.retiring;
    slot.retiring = true;
    if (first) this.options.onChange?.();
    try {
      await slot.process?.stop(drainMs);
    } finally {
      if (this.slots.get(slot.id) === slot) {
        this.slots.delete(slot.id);
        this.options.onChange?.();
        // Room under the cap: a deployment held back by it gets its next replica.
        if (this.shortfalls.size > 0) this.reconcile(this.lastDesired);
      }
    }
  }
}

/** The status line of a deployment the cap holds back: "n of m replicas: host replica cap GANTRY_MAX_REPLICAS=k reached". */
export function describeShortfall(shortfall: ReplicaShortfall): string {
  return `${shortfall.running} of ${shortfall.wanted} replicas: host replica cap GANTRY_MAX_REPLICAS=${shortfall.cap} reached`;
}

function observedState(process: ReplicaProcess): ObservedReplica['state'] {
  return process.phase;
}

function rank(slot: Slot): number {
  return slot.process?.phase === 'READY' ? 1 : 0;
}
