/**
 * Mocha global fixture (`.mocharc.json` requires it): builds the compiled `shardwise` the tests' child
 * processes run before any test starts, so the build's 10-20 s is no hook's or test's timeout.
 */
import { compiledDist } from './compiled-shardwise';

export function mochaGlobalSetup(): void {
  compiledDist();
}
