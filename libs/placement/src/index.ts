// @baton/placement: pure placement — which node runs which layers of a model, with predictions
// and the reasons alternatives lost. No I/O: inputs in, a Placement (or an error with numbers) out.
export { planPlacement, comparePlans, formatMs, formatRate } from './plan-placement.js';
export { exoPlacement, exoLayout, evaluateExo, type ExoPlacement } from './exo.js';
export { prepare, manifestProblems, type PlacementInput, type Prepared, type ResolvedNode, type ResolvedLink } from './input.js';
export { evaluateLayout, type Layout, type Evaluated } from './layout.js';
export { exactSearch, fixedOrderSearch, EXACT_SEARCH_MAX_NODES, type Measure, type Found } from './search.js';
export {
  buildCostModel, stageMemory, stageStreamBytes, stageMs, hopMs, hopTransferMs, predict,
  DEFAULT_COMPUTE_BYTES_PER_SEC, DEFAULT_LINK_RTT_MS, DEFAULT_LINK_BANDWIDTH_BYTES_PER_SEC,
  RUNTIME_OVERHEAD_BYTES, PREFILL_CHUNK_TOKENS, TOKEN_ID_BYTES,
  type CostModel, type StageMemory,
} from './costs.js';
export { InfeasibleError, PlacementInputError, type InfeasibleDetails, type InfeasibleNode } from './errors.js';
export { readClusterFile, clusterFromRecords } from './cluster-file.js';
