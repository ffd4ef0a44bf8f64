import { strict as assert } from 'node:assert';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfig } from '../../src/config';

describe('loadConfig', () => {
  it('gives the documented defaults for an empty environment', () => {
    const config = loadConfig({});
    assert.equal(config.home, path.resolve('.gantry'));
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.apiPort, 8080);
    assert.equal(config.gatewayPort, 8081);
    assert.equal(config.workerMetricsPort, 8082);
    assert.equal(config.temporalAddress, '127.0.0.1:7233');
    assert.equal(config.temporalUiPort, 8233);
    assert.equal(config.temporalNamespace, 'default');
    assert.equal(config.apiKey, undefined);
  });

  it('reads every variable and treats empty strings as unset', () => {
    const config = loadConfig({
      GANTRY_HOME: '/tmp/x',
      GANTRY_API_PORT: '9000',
      GANTRY_GATEWAY_PORT: '',
      GANTRY_WORKER_METRICS_PORT: '9464',
      TEMPORAL_ADDRESS: 'temporal:7233',
      GANTRY_API_KEY: 'a-key-of-sixteen-chars',
    });
    assert.equal(config.home, '/tmp/x');
    assert.equal(config.apiPort, 9000);
    assert.equal(config.gatewayPort, 8081);
    assert.equal(config.workerMetricsPort, 9464);
    assert.equal(config.temporalAddress, 'temporal:7233');
    assert.equal(config.apiKey, 'a-key-of-sixteen-chars');
  });

  it('refuses invalid values, naming each variable', () => {
    assert.throws(
      () => loadConfig({ GANTRY_API_PORT: '99999', TEMPORAL_ADDRESS: 'no-port', GANTRY_API_KEY: 'short' }),
      (error: unknown) =>
        error instanceof ConfigError && /GANTRY_API_PORT/.test(error.message) && /TEMPORAL_ADDRESS: must be host:port/.test(error.message) && /GANTRY_API_KEY/.test(error.message),
    );
  });

  it('reads the log settings, with their defaults, and refuses bad ones', () => {
    const defaults = loadConfig({});
    assert.equal(defaults.logLevel, 'info');
    assert.equal(defaults.logFormat, undefined);
    assert.deepEqual(defaults.deploymentLogs, { maxBytes: 10 * 1024 * 1024, rotatedFiles: 3 });
    const set = loadConfig({ GANTRY_LOG_LEVEL: 'debug', GANTRY_LOG_FORMAT: 'json', GANTRY_DEPLOYMENT_LOG_MAX_BYTES: '65536', GANTRY_DEPLOYMENT_LOG_FILES: '0' });
    assert.deepEqual([set.logLevel, set.logFormat, set.deploymentLogs], ['debug', 'json', { maxBytes: 65536, rotatedFiles: 0 }]);
    assert.throws(
      () => loadConfig({ GANTRY_LOG_LEVEL: 'loud', GANTRY_LOG_FORMAT: 'xml', GANTRY_DEPLOYMENT_LOG_MAX_BYTES: '100', GANTRY_DEPLOYMENT_LOG_FILES: '-1' }),
      (error: unknown) =>
        error instanceof ConfigError &&
        ['GANTRY_LOG_LEVEL', 'GANTRY_LOG_FORMAT', 'GANTRY_DEPLOYMENT_LOG_MAX_BYTES', 'GANTRY_DEPLOYMENT_LOG_FILES'].every((name) => error.message.includes(name)),
    );
  });

  it('reads the package and upload limits, with their defaults, and refuses bad ones', () => {
    const defaults = loadConfig({});
    assert.deepEqual(defaults.packageLimits, { maxUnpackedBytes: 2 * 1024 ** 3, maxFiles: 50_000 });
    assert.equal(defaults.maxConcurrentUploads, 4);
    const set = loadConfig({ GANTRY_PACKAGE_MAX_UNPACKED_BYTES: '67108864', GANTRY_PACKAGE_MAX_FILES: '1000', GANTRY_MAX_CONCURRENT_UPLOADS: '1' });
    assert.deepEqual([set.packageLimits, set.maxConcurrentUploads], [{ maxUnpackedBytes: 64 * 1024 * 1024, maxFiles: 1000 }, 1]);
    assert.throws(
      () => loadConfig({ GANTRY_PACKAGE_MAX_UNPACKED_BYTES: '1000', GANTRY_PACKAGE_MAX_FILES: 'many', GANTRY_MAX_CONCURRENT_UPLOADS: '0' }),
      (error: unknown) =>
        error instanceof ConfigError &&
        ['GANTRY_PACKAGE_MAX_UNPACKED_BYTES', 'GANTRY_PACKAGE_MAX_FILES', 'GANTRY_MAX_CONCURRENT_UPLOADS'].every((name) => error.message.includes(name)),
    );
  });

  it('reads the build deadline and the host replica cap (4 per CPU by default), and refuses bad ones', () => {
    const defaults = loadConfig({});
    assert.equal(defaults.buildTimeoutSeconds, 1200);
    assert.equal(defaults.maxReplicas, 4 * os.availableParallelism());
    const set = loadConfig({ GANTRY_BUILD_TIMEOUT_SECONDS: '30', GANTRY_MAX_REPLICAS: '2' });
    assert.deepEqual([set.buildTimeoutSeconds, set.maxReplicas], [30, 2]);
    // The build deadline stays below the build activity's 30-minute start-to-close timeout.
    assert.throws(
      () => loadConfig({ GANTRY_BUILD_TIMEOUT_SECONDS: '1800', GANTRY_MAX_REPLICAS: '0' }),
      (error: unknown) => error instanceof ConfigError && ['GANTRY_BUILD_TIMEOUT_SECONDS', 'GANTRY_MAX_REPLICAS'].every((name) => error.message.includes(name)),
    );
  });

  it('reads how long an unused Python environment is kept (a day by default), and refuses less than a minute', () => {
    assert.equal(loadConfig({}).venvRetentionSeconds, 86_400);
    assert.equal(loadConfig({ GANTRY_VENV_RETENTION_SECONDS: '600' }).venvRetentionSeconds, 600);
    assert.throws(
      () => loadConfig({ GANTRY_VENV_RETENTION_SECONDS: '5' }),
      (error: unknown) => error instanceof ConfigError && error.message.includes('GANTRY_VENV_RETENTION_SECONDS'),
    );
  });
});
