import { strict as assert } from 'node:assert';
import { BuildError } from '../../src/build/build-error';
import { parseModelConfig } from '../../src/build/model-package';
import { autoscalingSettingsPatchSchema, deploymentNameSchema, labelsSchema, pushOptionsSchema } from '../../src/shared/schemas';

describe('request schemas', () => {
  it('accepts Kubernetes-style labels and refuses bad keys, long values and too many labels', () => {
    assert.ok(labelsSchema.safeParse({ team: 'ml', 'app.kubernetes.io/name': 'x' }).success);
    assert.ok(!labelsSchema.safeParse({ 'bad key': 'x' }).success);
    assert.ok(!labelsSchema.safeParse({ k: 'v'.repeat(257) }).success);
    assert.ok(!labelsSchema.safeParse({ ['k'.repeat(64)]: 'v' }).success);
    assert.ok(!labelsSchema.safeParse({ k: 1 }).success);
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v']));
    assert.ok(!labelsSchema.safeParse(many).success);
  });

  it('reserves production and development as deployment names', () => {
    assert.ok(deploymentNameSchema.safeParse('v2.1-rc').success);
    for (const name of ['production', 'development', 'Upper', '-x', 'x-', '']) {
      assert.ok(!deploymentNameSchema.safeParse(name).success, name);
    }
  });

  it('parses push options strictly, defaulting labels to {}', () => {
    assert.deepEqual(pushOptionsSchema.parse({ model_name: 'echo' }), { model_name: 'echo', labels: {}, development: false });
    assert.ok(!pushOptionsSchema.safeParse({ model_name: 'echo', development: true, deployment_name: 'x' }).success);
    assert.ok(!pushOptionsSchema.safeParse({ model_name: 'echo', development: true, environment: 'production' }).success);
    assert.ok(!pushOptionsSchema.safeParse({ model_name: 'echo', extra: 1 }).success);
    assert.ok(!pushOptionsSchema.safeParse({}).success);
  });

  it('takes partial autoscaling patches (min_replica 0 included) but not empty or out-of-range ones', () => {
    assert.deepEqual(autoscalingSettingsPatchSchema.parse({ max_replica: 3 }), { max_replica: 3 });
    assert.ok(!autoscalingSettingsPatchSchema.safeParse({}).success);
    assert.ok(autoscalingSettingsPatchSchema.safeParse({ min_replica: 0 }).success);
    assert.ok(!autoscalingSettingsPatchSchema.safeParse({ max_replica: 0 }).success);
    assert.ok(!autoscalingSettingsPatchSchema.safeParse({ autoscaling_window: 5 }).success);
    assert.ok(!autoscalingSettingsPatchSchema.safeParse({ scale_down_delay: 3601 }).success);
    assert.ok(!autoscalingSettingsPatchSchema.safeParse({ concurrency_target: 0 }).success);
    assert.ok(!autoscalingSettingsPatchSchema.safeParse({ min_replica: 1.5 }).success);
    assert.ok(!autoscalingSettingsPatchSchema.safeParse({ max_replica: 33 }).success);
  });
});

describe('parseModelConfig', () => {
  it('fills in defaults and stringifies environment variables', () => {
    const { config, warnings } = parseModelConfig('model_name: echo\nenvironment_variables: {N: 3, ON: true}\n');
    assert.equal(config.model_class_filename, 'model.py');
    assert.equal(config.model_class_name, 'Model');
    assert.equal(config.model_module_dir, 'model');
    assert.deepEqual(config.requirements, []);
    assert.deepEqual(config.environment_variables, { N: '3', ON: 'true' });
    assert.equal(config.runtime.predict_concurrency, 1);
    assert.deepEqual(warnings, []);
  });

  it('keeps keys it does not know but warns about them', () => {
    const { warnings } = parseModelConfig('system_packages: [ffmpeg]\n');
    assert.match(warnings[0]!, /ignored: system_packages/);
  });

  it('names every invalid field', () => {
    assert.throws(
      () => parseModelConfig('requirements: "numpy"\nruntime: {predict_concurrency: 0}\n'),
      (error: unknown) =>
        error instanceof BuildError && error.kind === 'INVALID_CONFIG' && /requirements/.test(error.message) && /runtime\.predict_concurrency/.test(error.message),
    );
  });

  it('reports YAML syntax errors with the line', () => {
    assert.throws(
      () => parseModelConfig('model_name: echo\nrequirements: [a\n  b: c\n'),
      (error: unknown) => error instanceof BuildError && /not valid YAML at line \d/.test(error.message),
    );
  });

  it('refuses a config that is not a mapping', () => {
    assert.throws(() => parseModelConfig('- a\n- b\n'), /must be a mapping/);
  });
});
