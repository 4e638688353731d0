// Errors the placement library throws: INFEASIBLE (the model does not fit, with the numbers) and
// VALIDATION (the input itself is wrong). Both are BatonErrors so they cross RPC unchanged.
import { BatonError, ErrorCode } from '@baton/contracts';

export interface InfeasibleNode {
  nodeId: string;
  memoryBytes: number;
  /** Memory this node would need to hold the whole model alone (weights + KV + headroom). */
  wholeModelBytes: number;
  /** Most layers it can hold as a middle stage (0 when not even one fits). */
  maxLayers: number;
}

export interface InfeasibleDetails {
  layers: number;
  contextTokens: number;
  sequences: number;
  kvDType: string;
  /** What one stage holding everything needs; every extra stage adds headroom. */
  needed: { weightsBytes: number; kvBytes: number; headroomBytes: number; totalBytes: number };
  /** Headroom each additional stage adds. */
  headroomPerExtraStageBytes: number;
  availableBytes: number;
  nodes: InfeasibleNode[];
}

export class InfeasibleError extends BatonError {
  constructor(message: string, override readonly details: InfeasibleDetails) {
    super(ErrorCode.INFEASIBLE, message, details);
    this.name = 'InfeasibleError';
  }
}

export class PlacementInputError extends BatonError {
  constructor(readonly problems: string[]) {
    super(ErrorCode.VALIDATION, `invalid placement input: ${problems.join('; ')}`, { problems });
    this.name = 'PlacementInputError';
  }
}
