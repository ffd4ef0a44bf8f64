/**
 * Gantry's layering as dependency-cruiser rules (docs/architecture.md, "Layers"). `npm run lint`
 * runs them over src/, dashboard/src/ and worker.ts; any violation fails it.
 *
 * The layers, bottom up: src/shared (constants, zod schemas, API views) and src/contracts (the
 * workflows' activity interface, inputs, outputs, messages, failure types and rules, and the
 * API answers the CLI reads) are the leaves everyone may use; the store; then the processes'
 * own code (workflows, activities, API and services, node, CLI, dashboard), which talk to each
 * other only through the leaves.
 *
 * Type-only imports count (tsPreCompilationDeps): a type that crosses a layer the wrong way
 * couples the layers as much as a value does.
 */

/** The deterministic files of src/shared a workflow may import. */
const DETERMINISTIC_SHARED = '^src/shared/(constants|promotion-status|schemas|views)[.]ts$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment:
        'A cycle makes two modules one: neither can be understood, tested or moved without the ' +
        'other, and CommonJS may hand one of them a half-initialized module at load time.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'workflows-deterministic-only',
      comment:
        'Workflow code runs in the Temporal sandbox and is replayed: it may import only ' +
        'deterministic modules (its own folder, which holds the rollout plan; the contracts, which ' +
        'hold the promotion state table; the constants, status names, schemas and views of ' +
        'src/shared; @temporalio/workflow). No store, activities, node built-ins or I/O.',
      severity: 'error',
      from: { path: '^src/workflows/' },
      to: {
        pathNot: ['^src/workflows/', '^src/contracts/', DETERMINISTIC_SHARED, '(^|/)node_modules/@temporalio/workflow/'],
      },
    },
    {
      name: 'workflows-only-types-of-schemas-and-views',
      comment: 'src/shared/schemas.ts and views.ts build zod schemas at load time: workflows take their ' + 'types only, so zod stays out of the workflow bundle and its replay.',
      severity: 'error',
      from: { path: '^src/workflows/' },
      to: { path: '^src/shared/(schemas|views)[.]ts$', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'shared-is-a-leaf',
      comment:
        'src/shared is the bottom layer (constants, schemas, views) that every process and the ' +
        'dashboard use: it imports nothing of ours outside itself, so using it pulls in no layer.',
      severity: 'error',
      from: { path: '^src/shared/' },
      to: { path: '^(src|dashboard|test|bench)/|^worker[.]ts$', pathNot: '^src/shared/' },
    },
    {
      name: 'contracts-are-a-leaf',
      comment:
        'src/contracts is what two layers agree on (activities, workflow inputs and outputs, ' +
        'messages, failure types, the API answers the CLI reads). It builds on src/shared only, ' +
        'and workflows import it, so it must stay deterministic: nothing else of ours, no ' +
        'node built-ins, and of the packages only @temporalio/workflow (to define messages).',
      severity: 'error',
      from: { path: '^src/contracts/' },
      to: { pathNot: ['^src/contracts/', DETERMINISTIC_SHARED, '(^|/)node_modules/@temporalio/workflow/'] },
    },
    {
      name: 'store-knows-no-process',
      comment:
        'The store is shared by the API, the worker and the node: it may use the leaves (shared, ' +
        'contracts) but no code of the processes above it, or every process would load theirs.',
      severity: 'error',
      from: { path: '^src/store/' },
      to: { path: '^(src|dashboard)/|^worker[.]ts$', pathNot: ['^src/(store|shared|contracts)/'] },
    },
    {
      name: 'node-is-not-the-control-plane',
      comment:
        'The node is the data plane: it keeps serving, scaling and waking deployments while the ' +
        'API, the worker or Temporal are down, so it imports nothing of the control plane (API, ' +
        'services, workflows, activities, the Temporal client, the repair loop, the CLI).',
      severity: 'error',
      from: { path: '^src/node/' },
      to: { path: '^src/(api|services|workflows|activities|temporal|repair|async|cli)/' },
    },
    {
      name: 'gateway-reaches-no-store',
      comment:
        'The gateway serves from what the node pushes into it (routing snapshots, ready replicas; ' +
        'src/node/routing-snapshot.ts reads them from the store and the runtime), so no store ' +
        'call can sit on its hot path or its thread: it reaches no store code, not even through ' +
        'another module, nor the runtime that runs replicas.',
      severity: 'error',
      from: { path: '^src/node/gateway/' },
      to: { path: ['^src/store/', '^src/node/runtime/', '(^|/)node_modules/better-sqlite3/'], reachable: true },
    },
    {
      name: 'only-the-worker-loads-workflows',
      comment:
        'Workflow code belongs to the worker (which bundles src/workflows by path): everyone else ' +
        'talks to workflows through src/contracts (inputs, outputs, messages) and src/temporal.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/workflows/' },
      to: { path: '^src/workflows/' },
    },
    {
      name: 'cli-knows-only-the-api-contract',
      comment:
        'The CLI is an HTTP client of the API: it knows the API only by its contract (the shapes in ' +
        'src/shared and src/contracts) and its own modules. One exception: src/home.ts, the ' +
        'GANTRY_HOME path helper (node built-ins only), which the CLI needs to find the admin key ' +
        'a local stack wrote there; it pulls in no other layer.',
      severity: 'error',
      from: { path: '^src/cli/' },
      to: { path: '^(src|dashboard)/|^worker[.]ts$', pathNot: ['^src/(cli|shared|contracts)/', '^src/home[.]ts$'] },
    },
    {
      name: 'dashboard-knows-only-the-api-contract',
      comment:
        'The dashboard runs in a browser and talks to the API over HTTP: of our server code it may ' +
        'import only the contract (src/shared, src/contracts), and only what has no Node built-ins.',
      severity: 'error',
      from: { path: '^dashboard/' },
      to: { path: '^(src/|worker[.]ts$)', pathNot: '^src/(shared|contracts)/' },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'An import that does not resolve is a typo or a missing package: it would fail at run time.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: '(^|/)node_modules/' },
    exclude: { path: '^dist/' },
    // Type-only imports are dependencies too (see the top comment).
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.tsx', '.d.ts', '.js', '.mjs', '.cjs', '.json'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
