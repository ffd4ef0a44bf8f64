/**
 * The forms that change settings: an environment's promotion settings (rolling, surge or
 * unavailable, stabilization, cleanup, timeout, and the canary) and a deployment's autoscaling.
 * The API checks every value; a refusal is shown as it words it.
 */
import { useState } from 'preact/hooks';
import type { AutoscalingSettings, PromotionSettings } from '../../../src/shared/schemas';
import { api, describeError } from '../api';
import { ErrorMessage } from './badges';

/** A labelled number input. */
function NumberField({ label, value, onChange, min, max }: { label: string; value: number; onChange(value: number): void; min?: number; max?: number }) {
  return (
    <label>
      {label}
      <input type="number" value={value} min={min} max={max} onInput={(e) => onChange(Number(e.currentTarget.value))} />
    </label>
  );
}

/** Save and Cancel, and what went wrong. */
function FormFooter({ save, busy, error, onCancel }: { save: string; busy: boolean; error: string | null; onCancel(): void }) {
  return (
    <>
      <div class="buttons">
        <button type="submit" disabled={busy}>
          {save}
        </button>
        <button type="button" class="quiet" onClick={onCancel}>
          Cancel
        </button>
      </div>
      <ErrorMessage error={error} />
    </>
  );
}

/** Submits a change and reports how it went. */
function useSubmit(call: () => Promise<unknown>, onDone: () => void) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await call();
      onDone();
    } catch (failure) {
      setError(describeError(failure));
    } finally {
      setBusy(false);
    }
  };
  return { error, busy, submit };
}

/** An environment's promotion settings. */
export function PromotionSettingsForm({ modelId, environment, settings, onClose }: { modelId: string; environment: string; settings: PromotionSettings; onClose(): void }) {
  const [draft, setDraft] = useState(settings);
  const surge = draft.rolling_deploy_config.max_surge_percent > 0;
  const set = (patch: Partial<PromotionSettings>): void => setDraft({ ...draft, ...patch });
  const setRolling = (patch: Partial<PromotionSettings['rolling_deploy_config']>): void => set({ rolling_deploy_config: { ...draft.rolling_deploy_config, ...patch } });
  const { error, busy, submit } = useSubmit(() => api('PATCH', `/v1/models/${modelId}/environments/${environment}`, { promotion_settings: draft }), onClose);
  return (
    <form class="settings-form" onSubmit={submit} aria-label={`Promotion settings of ${environment}`}>
      <label class="check">
        <input type="checkbox" checked={draft.rolling_deploy} onChange={(e) => set({ rolling_deploy: e.currentTarget.checked })} /> Rolling promotions (off: switch at once)
      </label>
      <label>
        Rolling mode
        <select
          value={surge ? 'surge' : 'unavailable'}
          onChange={(e) =>
            setRolling(
              e.currentTarget.value === 'surge'
                ? { max_surge_percent: draft.rolling_deploy_config.max_unavailable_percent || 25, max_unavailable_percent: 0 }
                : { max_unavailable_percent: draft.rolling_deploy_config.max_surge_percent || 25, max_surge_percent: 0 },
            )
          }
        >
          <option value="surge">surge: the new deployment scales up first</option>
          <option value="unavailable">unavailable: the previous one scales down first</option>
        </select>
      </label>
      {surge ? (
        <NumberField label="Max surge (%)" value={draft.rolling_deploy_config.max_surge_percent} min={1} max={50} onChange={(v) => setRolling({ max_surge_percent: v })} />
      ) : (
        <NumberField
          label="Max unavailable (%)"
          value={draft.rolling_deploy_config.max_unavailable_percent}
          min={1}
          max={50}
          onChange={(v) => setRolling({ max_unavailable_percent: v })}
        />
      )}
      <NumberField
        label="Stabilization per step (s)"
        value={draft.rolling_deploy_config.stabilization_time_seconds}
        min={0}
        max={3600}
        onChange={(v) => setRolling({ stabilization_time_seconds: v })}
      />
      <NumberField label="Promotion timeout (s)" value={draft.promotion_timeout_seconds} min={10} max={86400} onChange={(v) => set({ promotion_timeout_seconds: v })} />
      <label>
        Afterwards, the previous deployment is
        <select
          value={draft.promotion_cleanup_strategy}
          onChange={(e) => set({ promotion_cleanup_strategy: e.currentTarget.value as PromotionSettings['promotion_cleanup_strategy'] })}
        >
          <option value="SCALE_TO_ZERO">scaled to zero</option>
          <option value="KEEP">kept running</option>
          <option value="DEACTIVATE">deactivated</option>
        </select>
      </label>
      <label class="check">
        <input type="checkbox" checked={draft.ramp_up_while_promoting} onChange={(e) => set({ ramp_up_while_promoting: e.currentTarget.checked })} /> Canary: move traffic in 10
        equal stages
      </label>
      {draft.ramp_up_while_promoting && (
        <NumberField label="Canary duration (s)" value={draft.ramp_up_duration_seconds} min={10} max={86400} onChange={(v) => set({ ramp_up_duration_seconds: v })} />
      )}
      <FormFooter save="Save settings" busy={busy} error={error} onCancel={onClose} />
    </form>
  );
}

/** A deployment's autoscaling settings. */
export function AutoscalingForm({ path, name, settings, onClose }: { path: string; name: string; settings: AutoscalingSettings; onClose(): void }) {
  const [draft, setDraft] = useState(settings);
  const set = (patch: Partial<AutoscalingSettings>): void => setDraft({ ...draft, ...patch });
  const { error, busy, submit } = useSubmit(() => api('PATCH', `${path}/autoscaling_settings`, draft), onClose);
  return (
    <form class="settings-form" onSubmit={submit} aria-label={`Autoscaling of ${name}`}>
      <NumberField label="Min replicas" value={draft.min_replica} min={0} onChange={(v) => set({ min_replica: v })} />
      <NumberField label="Max replicas" value={draft.max_replica} min={1} onChange={(v) => set({ max_replica: v })} />
      <NumberField label="Concurrency target" value={draft.concurrency_target} min={1} max={1024} onChange={(v) => set({ concurrency_target: v })} />
      <NumberField label="Autoscaling window (s)" value={draft.autoscaling_window} min={10} max={3600} onChange={(v) => set({ autoscaling_window: v })} />
      <NumberField label="Scale-down delay (s)" value={draft.scale_down_delay} min={0} max={3600} onChange={(v) => set({ scale_down_delay: v })} />
      <FormFooter save="Save autoscaling" busy={busy} error={error} onCancel={onClose} />
    </form>
  );
}
